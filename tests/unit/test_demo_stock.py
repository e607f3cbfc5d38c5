"""The demo's look at the stock before a run: how many orders it covers, what to add, and what it says."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from rich.console import Console

from domain.stock import MAX_RESTOCK
from infra.cli.demo import lines_of, order_input
from infra.cli.demo_api import Stocked
from infra.cli.demo_stock import NEEDS_ADMIN, RESTOCK_HINT, Lines, cover_the_run, orders_covered, top_ups

pytestmark = pytest.mark.unit

MOUSE, HUB = "mouse-id", "hub-id"
PRODUCTS = [Stocked(MOUSE, "Wireless Mouse", 3), Stocked(HUB, "USB-C Hub", 10)]
RUN: list[Lines] = [{MOUSE: 2}, {MOUSE: 2, HUB: 1}, {MOUSE: 1}, {HUB: 3}]


class FakeApi:
    """Answers each restock mutation as told, and remembers the ones it was sent."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.restocks: list[tuple[str, int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        variables = json.loads(request.content)["variables"]
        self.restocks.append((variables["productId"], variables["quantity"]))
        return httpx.Response(200, json=self.answer)


RESTOCKED = {"data": {"restock": {"product": {"available": 1}, "errors": []}}}
FORBIDDEN = {"data": None, "errors": [{"message": "Mutation.restock needs the admin scope",
                                       "extensions": {"code": "FORBIDDEN"}}]}


async def check(plan: Sequence[Lines], api: FakeApi, *, restock: bool, answer: bool | None = None,
                products: Sequence[Stocked] = PRODUCTS) -> tuple[str, list[str]]:
    """What the demo prints before the run, and the questions it asked (None: no one to ask)."""
    out, asked = io.StringIO(), []

    def question(text: str) -> bool:
        asked.append(text)
        return bool(answer)

    console = Console(file=out, width=200)
    async with httpx.AsyncClient(transport=httpx.MockTransport(api), base_url="http://api.test") as client:
        await cover_the_run(client, products, plan, console, restock=restock,
                            question=None if answer is None else question)
    return out.getvalue(), asked


def test_an_order_is_covered_whole_or_not_at_all_in_the_order_the_run_places_them() -> None:
    # The second order finds 1 mouse left and takes nothing; the third still gets that one.
    assert orders_covered(RUN, {MOUSE: 3, HUB: 10}) == 3
    assert orders_covered(RUN, {MOUSE: 5, HUB: 4}) == 4
    assert orders_covered(RUN, {}) == 0


def test_only_the_products_short_of_what_the_run_asks_for_are_topped_up_by_the_shortfall() -> None:
    assert top_ups(RUN, {MOUSE: 3, HUB: 10}) == {MOUSE: 2}
    assert top_ups(RUN, {HUB: 1}) == {MOUSE: 5, HUB: 3}
    assert top_ups(RUN, {MOUSE: 5, HUB: 4}) == {}


def test_the_demo_draws_orders_of_catalogue_products_and_for_itself_names_no_customer() -> None:
    rng = random.Random(7)
    orders = [order_input(rng, [MOUSE, HUB], f"k{i}", for_itself=i % 2 == 0) for i in range(50)]
    assert all(set(lines_of(order)) <= {MOUSE, HUB} for order in orders)
    assert all(1 <= units <= 3 for order in orders for units in lines_of(order).values())
    assert ["customerId" in order for order in orders[:4]] == [False, True, False, True]


async def test_a_run_the_stock_covers_is_started_without_a_word() -> None:
    api = FakeApi(RESTOCKED)
    said, asked = await check(RUN[:1], api, restock=False, answer=True)
    assert (said, asked, api.restocks) == ("", [], [])


async def test_without_a_terminal_the_shortfall_is_announced_with_the_hint_and_nothing_is_restocked() -> None:
    api = FakeApi(RESTOCKED)
    said, _ = await check(RUN, api, restock=False)
    assert said.splitlines() == [
        "stock covers about 3 of 4 orders; the rest will be cancelled for stock", RESTOCK_HINT]
    assert api.restocks == []


async def test_on_a_terminal_the_demo_asks_and_restocks_only_on_yes() -> None:
    declined, accepted = FakeApi(RESTOCKED), FakeApi(RESTOCKED)
    said_no, asked = await check(RUN, declined, restock=False, answer=False)
    said_yes, _ = await check(RUN, accepted, restock=False, answer=True)
    assert asked == ["Restock now? [Y/n] "]
    assert declined.restocks == [] and "restocked" not in said_no and RESTOCK_HINT not in said_no
    assert accepted.restocks == [(MOUSE, 2)]
    assert "restocked 1 product(s) for the run: Wireless Mouse +2" in said_yes


async def test_with_restock_a_large_top_up_is_sent_in_mutations_the_api_accepts() -> None:
    api = FakeApi(RESTOCKED)
    big = [{MOUSE: 1}] * (MAX_RESTOCK + 10)
    said, asked = await check(big, api, restock=True, answer=True)
    assert asked == []
    assert api.restocks == [(MOUSE, MAX_RESTOCK), (MOUSE, 10 - 3)]
    assert f"Wireless Mouse +{MAX_RESTOCK + 7}" in said


async def test_a_restock_refused_to_a_caller_who_is_not_an_admin_says_what_token_it_needs_once() -> None:
    api = FakeApi(FORBIDDEN)
    said, _ = await check(RUN, api, restock=True, products=[Stocked(MOUSE, "Wireless Mouse", 0),
                                                              Stocked(HUB, "USB-C Hub", 0)])
    assert said.splitlines()[1:] == [NEEDS_ADMIN]
    assert len(api.restocks) == 1, "the first refusal ends the restocking; the run goes on"

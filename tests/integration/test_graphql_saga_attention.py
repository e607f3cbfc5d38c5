"""Sagas that need attention, over GraphQL: who may list and retry them, the list, its pages, the retry.

A refund that keeps failing (the gateway's refund service is down) leaves its
saga NEEDS_ATTENTION after COMPENSATION_ATTEMPTS; `sagas(status:)` lists it to
an operator, and an admin's `retrySaga` resumes it once the gateway is mended.
Run in `required` mode on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import jwt

from commands.orders import PlaceOrder
from commands.simulation import ChargeResult, Refused
from domain.values import Money
from infra.settings import Settings
from read_api.cursor import encode_event_cursor
from tests.api_harness import Served, data_of, graphql, serving
from tests.integration.test_access import written
from tests.integration.test_saga_needs_attention import RefundsFailUntilMended
from tests.saga_harness import ADDRESS, KEYBOARD, MOUSE
from tests.tokens import ADMIN_TOKEN, admin, bearer, customer, operator, requiring_tokens

SAGAS = """query($status: SagaStatus, $first: Int, $after: String) {
  sagas(status: $status, first: $first, after: $after) { orderId status cursor } }"""
RETRY = """mutation($orderId: ID!) { retrySaga(orderId: $orderId) {
  saga { orderId status timeline { type detail } } errors { code message field } } }"""
ORDER = """query($id: ID!) { order(id: $id) {
  status totalAmount payment { status amount refundedAmount } saga { status } } }"""
Headers = dict[str, str]


class RefundsDown(RefundsFailUntilMended):
    """Every refund fails until mended; the cards of `declining` customers are declined."""

    def __init__(self) -> None:
        super().__init__()
        self.declining: set[UUID] = set()

    def charge(self, *, order_id: UUID, customer_id: UUID, amount: Money) -> ChargeResult:
        if customer_id in self.declining:
            return Refused("card declined")
        return super().charge(order_id=order_id, customer_id=customer_id, amount=amount)


@asynccontextmanager
async def attention_shop(store_settings: Settings) -> AsyncIterator[tuple[Served, Settings, RefundsDown]]:
    settings = requiring_tokens(
        store_settings, payment_failure_rate=0.0, shipping_failure_rate=0.0, notification_failure_rate=0.0,
        compensation_attempts=2, compensation_backoff_seconds=0.3,
    )
    gateway = RefundsDown()
    async with serving(settings, gateway=gateway) as served:
        yield served, settings, gateway


async def place(served: Served, *lines: tuple[UUID, int], customer_id: UUID | None = None) -> UUID:
    command = PlaceOrder(customer_id=customer_id or uuid4(), shipping_address=ADDRESS,
                         items=[{"product_id": p, "quantity": q} for p, q in lines])
    return await asyncio.to_thread(served.system.orders.place_order, command)


async def place_stuck(served: Served, customer_id: UUID | None = None) -> UUID:
    """An order that is charged, then refused for want of keyboards: its refund is what gets stuck."""
    return await place(served, (MOUSE, 2), (KEYBOARD, 31), customer_id=customer_id)


async def listed(
    served: Served, headers: Headers, status: str | None, until: Callable[[list[dict[str, Any]]], bool],
) -> list[dict[str, Any]]:
    """`sagas(status:)` once its answer satisfies `until`, as the projection catches up."""
    deadline = time.monotonic() + 30
    while True:
        sagas: list[dict[str, Any]] = (await data_of(
            served.client, SAGAS, {"status": status, "first": 100}, headers))["sagas"]
        if until(sagas):
            return sagas
        assert time.monotonic() < deadline, sagas
        await asyncio.sleep(0.1)


def order_ids(sagas: list[dict[str, Any]]) -> set[str]:
    return {saga["orderId"] for saga in sagas}


def refusal(answer: dict[str, Any]) -> str:
    assert answer["data"] is None, answer
    code: str = answer["errors"][0]["extensions"]["code"]
    return code


async def test_operators_list_sagas_only_admins_retry_them_and_a_refused_retry_writes_nothing(
    store_settings: Settings,
) -> None:
    owner = uuid4()
    async with attention_shop(store_settings) as (served, settings, gateway):
        stuck = str(await place_stuck(served, customer_id=owner))
        ops = operator(settings)
        await listed(served, ops, "NEEDS_ATTENTION", lambda sagas: order_ids(sagas) == {stuck})
        gateway.mend()  # from here on, a retry that got through would write
        forged = bearer(jwt.encode(
            {"sub": "admin-1", "scope": "operator admin", "exp": int(time.time()) + 3600},
            "another-secret" * 5, algorithm="HS256"))
        callers = {"anonymous": {}, "customer": customer(settings, owner), "forged": forged}
        before = written(served.system)
        listing = {name: await graphql(served.client, SAGAS, {"status": "NEEDS_ATTENTION"}, headers)
                   for name, headers in callers.items()}
        retrying = {name: await graphql(served.client, RETRY, {"orderId": stuck}, headers)
                    for name, headers in (*callers.items(), ("operator", ops))}
        await asyncio.sleep(0.5)  # a retry let through would have been recorded by now
        after_refusals = written(served.system)
        still = await listed(served, ops, "NEEDS_ATTENTION", lambda sagas: True)
        refunded_before = list(gateway.returned)
        by_admin = await data_of(served.client, RETRY, {"orderId": stuck}, admin(settings))

    assert {name: refusal(answer) for name, answer in listing.items()} == {
        "anonymous": "UNAUTHENTICATED", "customer": "FORBIDDEN", "forged": "UNAUTHENTICATED"}
    assert {name: refusal(answer) for name, answer in retrying.items()} == {
        "anonymous": "UNAUTHENTICATED", "customer": "FORBIDDEN", "forged": "UNAUTHENTICATED",
        "operator": "FORBIDDEN"}
    assert after_refusals == before
    assert [(s["orderId"], s["status"]) for s in still] == [(stuck, "NEEDS_ATTENTION")]
    assert refunded_before == [], "nothing was refunded until the admin's retry"
    assert by_admin["retrySaga"]["errors"] == []
    timeline = [(e["type"], e["detail"]) for e in by_admin["retrySaga"]["saga"]["timeline"]]
    assert ("CompensationResumed", "retried by admin-1") in timeline, "the timeline says who retried"


async def test_sagas_by_status_lists_exactly_those_in_it_and_pages_without_skipping_or_repeating(
    store_settings: Settings,
) -> None:
    declined = uuid4()
    async with attention_shop(store_settings) as (served, settings, gateway):
        gateway.declining.add(declined)
        stuck = {str(await place_stuck(served)) for _ in range(3)}
        completed = str(await place(served, (MOUSE, 1)))
        compensated = str(await place(served, (MOUSE, 1), customer_id=declined))
        ops = operator(settings)
        attention = await listed(served, ops, "NEEDS_ATTENTION", lambda sagas: len(sagas) >= 3)
        everyone = await listed(served, ops, None, lambda sagas: {
            (s["orderId"], s["status"]) for s in sagas} >= {(completed, "COMPLETED"),
                                                             (compensated, "COMPENSATED")})
        done = await listed(served, ops, "COMPLETED", lambda sagas: True)
        undone = await listed(served, ops, "COMPENSATED", lambda sagas: True)

        pages, after = [], None
        for _ in range(4):
            page = (await data_of(served.client, SAGAS, {"status": "NEEDS_ATTENTION", "first": 2,
                                                         "after": after}, ops))["sagas"]
            pages.append(page)
            if not page:
                break
            after = page[-1]["cursor"]
        too_many = await graphql(served.client, SAGAS, {"first": 101}, ops)
        none = await graphql(served.client, SAGAS, {"first": 0}, ops)
        garbage = await graphql(served.client, SAGAS, {"after": "not-a-cursor"}, ops)
        events_cursor = encode_event_cursor(UUID(completed), 3)
        foreign = await graphql(served.client, SAGAS, {"after": events_cursor}, ops)

    assert order_ids(attention) == stuck and {s["status"] for s in attention} == {"NEEDS_ATTENTION"}
    assert order_ids(everyone) == {*stuck, completed, compensated}
    assert order_ids(done) == {completed} and order_ids(undone) == {compensated}
    assert [len(page) for page in pages] == [2, 1, 0]
    paged = [saga["orderId"] for page in pages for saga in page]
    assert paged == [saga["orderId"] for saga in attention], "the pages, in turn, are the whole list"
    for answer, field in ((too_many, "first"), (none, "first"), (garbage, "after"), (foreign, "after")):
        assert answer["data"] is None, answer
        [error] = answer["errors"]
        assert error["extensions"]["field"] == field, error
    assert "first must be between 1 and 100" in too_many["errors"][0]["message"]
    assert {garbage["errors"][0]["extensions"]["code"], foreign["errors"][0]["extensions"]["code"]} == {
        "INVALID_CURSOR"}


async def test_an_admins_retry_cancels_the_order_refunding_once_and_any_other_retry_is_refused(
    store_settings: Settings,
) -> None:
    async with attention_shop(store_settings) as (served, settings, gateway):
        stuck = str(await place_stuck(served))
        completed = str(await place(served, (MOUSE, 1)))
        ops, by_admin = operator(settings), admin(settings)
        await listed(served, ops, "NEEDS_ATTENTION", lambda sagas: order_ids(sagas) == {stuck})
        await listed(served, ops, "COMPLETED", lambda sagas: order_ids(sagas) == {completed})
        gateway.mend()

        before = written(served.system)
        refused = {name: (await data_of(served.client, RETRY, {"orderId": order_id}, by_admin))["retrySaga"]
                   for name, order_id in (("completed", completed), ("unknown", str(uuid4())),
                                          ("malformed", "not-an-id"))}
        after_refusals = written(served.system)
        retried = (await data_of(served.client, RETRY, {"orderId": stuck}, bearer(ADMIN_TOKEN)))["retrySaga"]
        order = await settled(served, stuck, ops)
        before_again = await quiet(served)
        again = (await data_of(served.client, RETRY, {"orderId": stuck}, by_admin))["retrySaga"]
        await asyncio.sleep(0.5)
        after_again = written(served.system)
        attention = (await data_of(served.client, SAGAS, {"status": "NEEDS_ATTENTION"}, ops))["sagas"]

    answers = {name: (p["saga"], [(e["code"], e["field"]) for e in p["errors"]])
               for name, p in refused.items()}
    assert answers == {
        "completed": (None, [("SAGA_NOT_NEEDING_ATTENTION", "orderId")]),
        "unknown": (None, [("SAGA_NOT_FOUND", "orderId")]),
        "malformed": (None, [("VALIDATION_ERROR", "orderId")]),
    }
    assert "COMPLETED" in refused["completed"]["errors"][0]["message"]
    assert after_refusals == before
    assert retried["errors"] == [] and retried["saga"]["orderId"] == stuck
    assert retried["saga"]["status"] in ("COMPENSATING", "COMPENSATED")
    assert order["status"] == "CANCELLED" and order["saga"]["status"] == "COMPENSATED"
    payment = order["payment"]
    assert payment["status"] == "REFUNDED" and payment["refundedAmount"] == payment["amount"]
    assert gateway.returned == [Money.of(payment["amount"])], "refunded exactly once"
    assert [(e["code"], e["field"]) for e in again["errors"]] == [("SAGA_NOT_NEEDING_ATTENTION", "orderId")]
    assert again["saga"] is None and after_again == before_again
    assert attention == []


async def quiet(served: Served) -> int:
    """How many events the stores hold, once nothing has been written for half a second."""
    count = written(served.system)
    for _ in range(60):
        await asyncio.sleep(0.5)
        count, previous = written(served.system), count
        if count == previous:
            return count
    raise AssertionError("the system kept writing")


async def settled(served: Served, order_id: str, headers: Headers) -> dict[str, Any]:
    """The order once it is CANCELLED, its saga COMPENSATED and its refund projected."""
    deadline = time.monotonic() + 30
    while True:
        order: dict[str, Any] = (await data_of(served.client, ORDER, {"id": order_id}, headers))["order"]
        payment = order["payment"] or {}
        if order["status"] == "CANCELLED" and order["saga"]["status"] == "COMPENSATED" \
                and Decimal(payment.get("refundedAmount") or 0) > 0:
            return order
        assert time.monotonic() < deadline, order
        await asyncio.sleep(0.1)

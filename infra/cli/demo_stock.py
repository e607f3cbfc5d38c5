"""Before `saga demo` places its orders: will the stock cover them, and topping it up when it will not.

The demo draws every order before placing any, so it knows the units of each
product the run asks for. `orders_covered` counts the orders the available
stock covers, taken in the order they will be placed; it is an estimate, since
orders run concurrently and an order whose payment is declined takes no stock.
`top_ups` is what each product needs to cover the whole run. Restocking is an
admin's mutation: refused, the demo says what token it needs and goes on.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import httpx
from rich.console import Console
from rich.markup import escape

from domain.stock import MAX_RESTOCK
from infra.cli.demo_api import REFUSED, GraphQLError, Stocked, graphql

Lines = Mapping[str, int]
"""The units of each product one order asks for, by product id."""

Question = Callable[[str], bool]
"""Puts a yes/no question to the person running the demo."""

RESTOCK = """
mutation($productId: ID!, $quantity: Int!) {
  restock(productId: $productId, quantity: $quantity) { product { available } errors { code message } }
}"""
RESTOCK_HINT = "saga demo --restock tops the stock up first"
NEEDS_ADMIN = "restocking needs an admin token (--token, saga token --admin)"


def demand(plan: Sequence[Lines]) -> Counter[str]:
    """The units of each product the whole run asks for."""
    total: Counter[str] = Counter()
    for lines in plan:
        total.update(lines)
    return total


def orders_covered(plan: Sequence[Lines], available: Mapping[str, int]) -> int:
    """How many orders of the run the stock covers, each one reserving all its lines or none."""
    left = dict(available)
    covered = 0
    for lines in plan:
        if all(left.get(product, 0) >= units for product, units in lines.items()):
            for product, units in lines.items():
                left[product] -= units
            covered += 1
    return covered


def top_ups(plan: Sequence[Lines], available: Mapping[str, int]) -> dict[str, int]:
    """The units to add to each product that has fewer available than the whole run asks for."""
    return {product: units - available.get(product, 0)
            for product, units in sorted(demand(plan).items()) if units > available.get(product, 0)}


def terminal_question(console: Console) -> Question | None:
    """Asks on the terminal (Enter is yes), or None when stdin is not one: no one is there to answer."""
    if not sys.stdin.isatty():
        return None

    def question(text: str) -> bool:
        try:
            answer = console.input(escape(text))
        except EOFError:
            return False
        return answer.strip().lower() in ("", "y", "yes")

    return question


def shortfall(covered: int, orders: int) -> str:
    return f"stock covers about {covered} of {orders} orders; the rest will be cancelled for stock"


async def cover_the_run(
    client: httpx.AsyncClient, products: Sequence[Stocked], plan: Sequence[Lines], console: Console,
    *, restock: bool, question: Question | None,
) -> None:
    """Say when the stock will not cover the run, and restock if asked to (or if the answer is yes).

    `question` is None when there is no one to ask (stdin is not a terminal): then a hint is printed.
    """
    available = {product.id: product.available for product in products}
    covered = orders_covered(plan, available)
    if covered >= len(plan):
        return
    console.print(shortfall(covered, len(plan)), soft_wrap=True, highlight=False)
    if not restock:
        if question is None:
            console.print(RESTOCK_HINT, soft_wrap=True, highlight=False)
            return
        if not question("Restock now? [Y/n] "):
            return
    await add_stock(client, products, top_ups(plan, available), console)


async def add_stock(
    client: httpx.AsyncClient, products: Sequence[Stocked], units: Mapping[str, int], console: Console,
) -> None:
    """Restock each product by its units and say what was added; refused as no admin, say so and stop."""
    names = {product.id: product.name for product in products}
    added: dict[str, int] = {}
    for product, count in units.items():
        try:
            problem = await restock(client, product, count)
        except NotAnAdminError:
            console.print(NEEDS_ADMIN, soft_wrap=True, highlight=False)
            break
        if problem is None:
            added[product] = count
        else:
            console.print(f"could not restock {escape(names[product])}: {escape(problem)}", soft_wrap=True)
    if added:
        what = ", ".join(f"{names[product]} +{count}" for product, count in added.items())
        console.print(f"restocked {len(added)} product(s) for the run: {escape(what)}",
                      soft_wrap=True, highlight=False)


class NotAnAdminError(Exception):
    """The API refused a restock to this caller (FORBIDDEN or UNAUTHENTICATED)."""


async def restock(client: httpx.AsyncClient, product: str, units: int) -> str | None:
    """Add `units` of `product`, at most MAX_RESTOCK a mutation; the refusal as `CODE: message`, or None."""
    for start in range(0, units, MAX_RESTOCK):
        variables = {"productId": product, "quantity": min(MAX_RESTOCK, units - start)}
        try:
            payload = (await graphql(client, RESTOCK, variables))["restock"]
        except GraphQLError as error:
            if error.code in REFUSED:
                raise NotAnAdminError(str(error)) from None
            return str(error)
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}"
        if payload["errors"]:
            first = payload["errors"][0]
            return f"{first['code']}: {first['message']}"
    return None

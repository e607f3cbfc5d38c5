"""Forgetting a customer: every view shows their personal data erased, and nothing else changes.

Through the API as an admin would: the order's address reads `[erased]` in
GraphQL, REST, the events of its streams and the audit, a rebuild of the read
models agrees with the live ones, another customer's address is untouched, and
the money and the stock still balance. An order still in flight is cancelled
and compensated before anything is erased.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from commands.audit.timeline import timeline
from domain.privacy import ERASED
from infra.settings import Settings
from projections.rebuild import rebuild
from tests.api_harness import Served, data_of, graphql, serving
from tests.fakes import FakeGateway
from tests.integration.test_graphql_orders import PLACE, placement, settled
from tests.saga_harness import MOUSE

pytestmark = pytest.mark.integration

FORGET = """mutation($customer: ID!) {
  forgetCustomer(customerId: $customer) {
    customerId orders cancelled forgottenBefore errors { code message field }
  }
}"""
ADDRESS = """query($id: ID!) {
  order(id: $id) { id status totalAmount shippingAddress { street city state zipCode country } }
}"""
EVENTS = """query($stream: ID!) { events(streamId: $stream) { type data } }"""


async def place(served: Served) -> tuple[str, str]:
    """An order placed over GraphQL: its id and its customer's."""
    variables = placement((MOUSE, 1))
    payload = (await data_of(served.client, PLACE, variables))["placeOrder"]
    assert payload["errors"] == []
    return payload["order"]["id"], variables["input"]["customerId"]


async def eventually(
    read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], within: float = 10
) -> Any:
    deadline = time.monotonic() + within
    while not ok(found := await read()):
        assert time.monotonic() < deadline, f"not so in time: {found}"
        await asyncio.sleep(0.05)
    return found


async def address_of(served: Served, order_id: str) -> dict[str, str]:
    order = (await data_of(served.client, ADDRESS, {"id": order_id}))["order"]
    address: dict[str, str] = order["shippingAddress"]
    return address


def balances(served: Served) -> tuple[Decimal, int]:
    """Money taken and not given back, and units sold, as the event stores have them."""
    gateway = served.system.payments.gateway
    assert isinstance(gateway, FakeGateway)
    taken = sum((m.amount for m in gateway.taken), Decimal(0))
    given_back = sum((m.amount for _, m in gateway.refunds.values()), Decimal(0))
    stock = served.system.inventory.get_stock(MOUSE)
    return taken - given_back, stock.on_hand


async def test_a_forgotten_customer_s_address_reads_erased_in_every_view_and_a_rebuild_agrees(
    store_settings: Settings,
) -> None:
    async with serving(store_settings) as served:
        order_id, customer = await place(served)
        other_id, _ = await place(served)
        for placed in (order_id, other_id):
            assert (await settled(served, placed))["status"] == "COMPLETED"
        books = balances(served)

        forgotten = (await data_of(served.client, FORGET, {"customer": customer}))["forgetCustomer"]
        assert forgotten == {"customerId": customer, "orders": [order_id], "cancelled": [],
                             "forgottenBefore": False, "errors": []}
        again = (await data_of(served.client, FORGET, {"customer": customer}))["forgetCustomer"]
        assert again["forgottenBefore"] is True and again["errors"] == []

        erased = {"street": ERASED, "city": ERASED, "state": ERASED, "zipCode": ERASED, "country": ERASED}
        await eventually(lambda: address_of(served, order_id), lambda found: found == erased)
        assert (await address_of(served, other_id))["city"] == "Springfield"
        rest = (await served.client.get(f"/api/v1/orders/{order_id}")).json()
        assert "Springfield" not in str(rest) and ERASED in str(rest)
        for stream in [order_id, *map(str, served.system.shipping.order_streams(UUID(order_id)).values())]:
            told = str((await data_of(served.client, EVENTS, {"stream": stream}))["events"])
            assert "Springfield" not in told and "1 Main St" not in told
        audit = " ".join(e.summary for e in timeline(served.system.applications, UUID(order_id)))
        assert "Springfield" not in audit and "personal data erased" in audit

        read_model = served.projector.read_model()
        live = await read_model.orders(first=100)
        assert {str(row.id) for row in live.rows} == {order_id, other_id}  # the read model's own rows
        await rebuild(served.projector)
        rebuilt = await read_model.orders(first=100)
        assert rebuilt == live
        assert [s.name for s in await read_model.projection_status() if s.failed] == []
        assert balances(served) == books  # the books still balance: nothing was charged, refunded or moved


async def test_forgetting_a_customer_with_an_order_in_flight_cancels_and_compensates_it_first(
    store_settings: Settings,
) -> None:
    slow = FakeGateway(delay=1.5)  # the charge is under way when the forgetting comes
    async with serving(store_settings, gateway=slow) as served:
        before = balances(served)
        order_id, customer = await place(served)
        answer = await graphql(served.client, FORGET, {"customer": customer})

        forgotten = answer["data"]["forgetCustomer"]
        assert forgotten["errors"] == [] and forgotten["cancelled"] == [order_id]
        order = await settled(served, order_id)
        assert order["status"] == "CANCELLED" and order["saga"]["status"] == "COMPENSATED"
        assert order["payment"]["refundedAmount"] == order["payment"]["amount"]
        assert balances(served) == before  # the charge refunded, the units back on the shelf
        assert served.system.inventory.get_stock(MOUSE).reserved == 0
        await eventually(lambda: address_of(served, order_id), lambda found: found["street"] == ERASED)

"""Placing and following orders through GraphQL, against the whole running system."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID, uuid4

from infra.settings import Settings
from tests.api_harness import Served, data_of, serving
from tests.fakes import FakeGateway
from tests.saga_harness import LAPTOP, MOUSE

PLACE = """
mutation Place($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    order { id status totalAmount currency version items { productId productName quantity unitPrice } }
    errors { code message field }
  }
}"""
ORDER = """
query Order($id: ID!) {
  order(id: $id) {
    id status totalAmount failureReason version
    payment { status amount transactionId refundedAmount }
    shipment { status trackingNumber }
    saga { status currentStep steps { name status attempts } }
  }
}"""
GRAPHQL_ADDRESS = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701",
                   "country": "US"}


def placement(*lines: tuple[UUID, int], **extra: Any) -> dict[str, Any]:
    items = [{"productId": str(product), "quantity": quantity} for product, quantity in lines]
    fields = {"customerId": str(uuid4()), "items": items, "shippingAddress": GRAPHQL_ADDRESS}
    return {"input": {**fields, **extra}}


async def settled(served: Served, order_id: str, *, within: float = 20.0) -> dict[str, Any]:
    """The order once it and its saga have ended, as the API shows it."""
    deadline = time.monotonic() + within
    while True:
        order: dict[str, Any] = (await data_of(served.client, ORDER, {"id": order_id}))["order"]
        saga = order["saga"]
        if saga is not None and saga["status"] in ("COMPLETED", "COMPENSATED") and order["status"] in (
                "COMPLETED", "CANCELLED"):
            return order
        assert time.monotonic() < deadline, f"order {order_id} did not settle: {order}"
        await asyncio.sleep(0.05)


async def test_a_placed_order_is_answered_at_once_and_completes_with_payment_shipment_and_saga(
    store_settings: Settings,
) -> None:
    async with serving(store_settings) as served:
        placed = (await data_of(served.client, PLACE, placement((LAPTOP, 2), (MOUSE, 1))))["placeOrder"]

        assert placed["errors"] == []
        order = placed["order"]
        assert order["totalAmount"] == "2649.97" and order["currency"] == "USD" and order["version"] >= 1
        assert order["items"][0] == {"productId": str(LAPTOP), "productName": "Laptop Pro 15", "quantity": 2,
                                     "unitPrice": "1299.99"}
        done = await settled(served, order["id"])

    assert done["status"] == "COMPLETED" and done["failureReason"] is None
    assert done["payment"] == {"status": "COMPLETED", "amount": "2649.97",
                               "transactionId": done["payment"]["transactionId"], "refundedAmount": "0.00"}
    assert done["shipment"]["status"] == "PREPARING" and done["shipment"]["trackingNumber"]
    assert done["saga"]["status"] == "COMPLETED" and done["saga"]["currentStep"] is None
    assert [(s["name"], s["status"]) for s in done["saga"]["steps"]] == [
        ("payment", "SUCCEEDED"), ("inventory", "SUCCEEDED"), ("shipping", "SUCCEEDED"),
        ("notification", "SUCCEEDED")]


async def test_a_declined_payment_shows_the_order_cancelled_with_its_reason(store_settings: Settings) -> None:
    async with serving(store_settings, gateway=FakeGateway(decline="card declined")) as served:
        placed = (await data_of(served.client, PLACE, placement((MOUSE, 1))))["placeOrder"]
        done = await settled(served, placed["order"]["id"])

    assert done["status"] == "CANCELLED"
    assert "card declined" in done["failureReason"]
    assert done["payment"]["status"] == "FAILED"
    assert done["shipment"] is None
    assert done["saga"]["status"] == "COMPENSATED"
    steps = {s["name"]: s["status"] for s in done["saga"]["steps"]}
    assert steps["payment"] == "FAILED" and steps["shipping"] == "SKIPPED"

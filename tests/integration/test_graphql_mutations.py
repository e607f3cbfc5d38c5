"""Mutations through GraphQL: refusals as payload errors that write nothing, idempotency, cancellation."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from uuid import uuid4

from eventsourcing.utils import get_topic

from domain.order import Order
from infra.bootstrap import System
from infra.settings import Settings
from tests.api_harness import data_of, serving
from tests.fakes import FakeGateway
from tests.integration.test_graphql_orders import PLACE, placement, settled
from tests.saga_harness import KEYBOARD, MOUSE

SNAKE_CASE = re.compile(r"[A-Za-z0-9]_[A-Za-z0-9]")
"""A name as the write side spells it (`product_id`), which a GraphQL client never sent."""
CANCEL = """
mutation Cancel($id: ID!, $reason: String) {
  cancelOrder(id: $id, reason: $reason) { order { id status version } errors { code message field } }
}"""


def placed_orders(system: System) -> int:
    log = system.orders.process_recorder
    return len(log.select_notifications(0, 1000, topics=[get_topic(Order.Placed)]))


def refusals(payload: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(error["code"], error["field"]) for error in payload["errors"]]


def with_item(**changes: Any) -> dict[str, Any]:
    variables = placement((MOUSE, 1))
    variables["input"]["items"][0].update(changes)
    return variables


async def test_a_bad_input_is_refused_with_its_code_and_field_and_writes_no_event(
    sqlite_settings: Settings,
) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        (with_item(quantity=0), "VALIDATION_ERROR", "items[0].quantity"),
        (with_item(productId=str(uuid4())), "UNKNOWN_PRODUCT", "items[0].productId"),
        (with_item(productId="not-an-id"), "VALIDATION_ERROR", "items[0].productId"),
        (with_item(price="1.00"), "PRICE_MISMATCH", "items[0].price"),
        (placement((MOUSE, 1), customerId="nobody"), "VALIDATION_ERROR", "customerId"),
        (placement(), "VALIDATION_ERROR", "items"),
        (placement((MOUSE, 1), (MOUSE, 2)), "VALIDATION_ERROR", "items[1].productId"),
        (placement((MOUSE, 1), idempotencyKey="  "), "VALIDATION_ERROR", "idempotencyKey"),
    ]
    blank_zip = placement((MOUSE, 1))
    blank_zip["input"]["shippingAddress"] = {**blank_zip["input"]["shippingAddress"], "zipCode": " "}
    cases.append((blank_zip, "VALIDATION_ERROR", "shippingAddress.zipCode"))

    async with serving(sqlite_settings, roles=()) as served:
        for variables, code, field in cases:
            answer = (await data_of(served.client, PLACE, variables))["placeOrder"]
            assert answer["order"] is None
            assert refusals(answer) == [(code, field)], variables
            assert answer["errors"][0]["message"]
        listed = await data_of(served.client, "{ orders { totalCount } }")
        assert placed_orders(served.system) == 0

    assert listed["orders"]["totalCount"] == 0


async def test_a_refusal_names_the_field_in_its_message_as_the_client_spelled_it(
    sqlite_settings: Settings,
) -> None:
    unknown = uuid4()
    blank_zip = placement((MOUSE, 1))
    blank_zip["input"]["shippingAddress"] = {**blank_zip["input"]["shippingAddress"], "zipCode": ""}
    cases = [with_item(productId=str(unknown)), with_item(productId="not-an-id"), with_item(quantity=0),
             blank_zip]

    async with serving(sqlite_settings, roles=()) as served:
        errors = [(await data_of(served.client, PLACE, variables))["placeOrder"]["errors"][0]
                  for variables in cases]

    fields = [error["field"] for error in errors]
    assert fields == ["items[0].productId", "items[0].productId", "items[0].quantity",
                      "shippingAddress.zipCode"]
    assert all(SNAKE_CASE.search(error["message"]) is None for error in errors), errors
    assert str(unknown) in errors[0]["message"]
    assert all(error["message"].startswith(f"{error['field']}: ") for error in errors[1:]), errors


async def test_the_same_idempotency_key_returns_the_first_order_and_never_places_a_second(
    store_settings: Settings,
) -> None:
    first = placement((MOUSE, 1), idempotencyKey="checkout-42")
    again = {"input": {**first["input"], "items": [{"productId": str(KEYBOARD), "quantity": 3}]}}
    other_customer = {"input": {**first["input"], "customerId": str(uuid4())}}

    async with serving(store_settings, roles=()) as served:
        answers = await asyncio.gather(*(data_of(served.client, PLACE, first) for _ in range(3)))
        repeat = await data_of(served.client, PLACE, again)
        separate = await data_of(served.client, PLACE, other_customer)
        orders = placed_orders(served.system)

    ids = {a["placeOrder"]["order"]["id"] for a in answers}
    assert len(ids) == 1
    assert repeat["placeOrder"]["order"]["id"] in ids
    assert repeat["placeOrder"]["order"]["items"][0]["productId"] == str(MOUSE)  # the first order, as it was
    assert separate["placeOrder"]["order"]["id"] not in ids
    assert orders == 2


async def test_a_customer_cancels_an_order_and_the_saga_undoes_it(sqlite_settings: Settings) -> None:
    async with serving(sqlite_settings, gateway=FakeGateway(delay=0.3)) as served:
        placed = (await data_of(served.client, PLACE, placement((MOUSE, 1))))["placeOrder"]["order"]
        asked = (await data_of(served.client, CANCEL, {"id": placed["id"], "reason": "changed my mind"}))
        unknown = await data_of(served.client, CANCEL, {"id": str(uuid4())})
        malformed = await data_of(served.client, CANCEL, {"id": "nope"})
        done = await settled(served, placed["id"])

    assert asked["cancelOrder"]["errors"] == []
    assert asked["cancelOrder"]["order"]["version"] >= 2  # the request is in what it answers
    assert refusals(unknown["cancelOrder"]) == [("ORDER_NOT_FOUND", "id")]
    assert refusals(malformed["cancelOrder"]) == [("VALIDATION_ERROR", "id")]
    assert done["status"] == "CANCELLED" and done["saga"]["status"] == "COMPENSATED"
    assert "changed my mind" in done["failureReason"]
    assert done["payment"]["status"] == "REFUNDED"


async def test_a_completed_order_cannot_be_cancelled(sqlite_settings: Settings) -> None:
    async with serving(sqlite_settings) as served:
        placed = (await data_of(served.client, PLACE, placement((MOUSE, 1))))["placeOrder"]["order"]
        await settled(served, placed["id"])
        late = await data_of(served.client, CANCEL, {"id": placed["id"]})

    assert late["cancelOrder"]["order"] is None
    assert late["cancelOrder"]["errors"][0]["code"] == "ORDER_ALREADY_COMPLETED"

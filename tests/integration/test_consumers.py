"""Consumers turn deliveries into exactly-once effects and a verdict per message."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.command import Command
from commands.contract.messages import Envelope
from commands.orders import CancelOrder, CompleteOrder, Orders, PlaceOrder
from domain.order import OrderStatus
from infra.eventstore.persistence import application_env
from infra.messaging.bus import COMMANDS_EXCHANGE, Delivery, Verdict
from infra.messaging.consumers import command_subscription
from infra.settings import Settings
from tests.fakes import ADDRESS, MOUSE, listed_mouse


@pytest.fixture(params=["sqlite", "postgres"])
def orders(request: pytest.FixtureRequest) -> Iterator[Orders]:
    settings: Settings = request.getfixturevalue(f"{request.param}_settings")
    app = listed_mouse(Orders(application_env(settings, "Orders")))
    yield app
    app.close()


def delivery(command: Command | None = None, *, type_: str | None = None,
             payload: dict[str, Any] | None = None, position: int = 1) -> Delivery:
    name = type_ or type(command).__name__
    return Delivery(Envelope(
        message_id=f"OrderFulfillment:{position}", type=name, kind="command",
        occurred_at=datetime.now(UTC), source="OrderFulfillment", position=position,
        routing_key=f"orders.{name}",
        payload=payload if payload is not None else command.model_dump(mode="json") if command else {},
    ))


def placed(orders: Orders) -> UUID:
    return orders.place_order(PlaceOrder(
        customer_id=uuid4(), items=[{"product_id": MOUSE, "quantity": 1}], shipping_address=ADDRESS))


async def test_a_batch_of_commands_is_handled_and_acknowledged(orders: Orders) -> None:
    ids = [placed(orders) for _ in range(3)]
    subscription = command_subscription(orders, "orders")
    assert subscription.exchange == COMMANDS_EXCHANGE
    assert subscription.routing_keys == ("orders.*",)

    outcomes = await subscription.handler([delivery(CompleteOrder(order_id=i)) for i in ids])

    assert [o.verdict for o in outcomes] == [Verdict.DONE] * 3
    assert {orders.get_order(i).status for i in ids} == {OrderStatus.COMPLETED}


async def test_a_redelivered_command_has_one_effect(orders: Orders) -> None:
    order_id = placed(orders)
    command = CompleteOrder(order_id=order_id)
    handler = command_subscription(orders, "orders").handler

    first = await handler([delivery(command), delivery(command)])
    again = await handler([delivery(command)])

    assert [o.verdict for o in [*first, *again]] == [Verdict.DONE] * 3
    assert [e.originator_version for e in orders.events.get(order_id)] == [1, 2]


async def test_one_refused_command_is_parked_and_the_rest_of_its_batch_still_happens(orders: Orders) -> None:
    done, refused = placed(orders), placed(orders)
    orders.complete_order(CompleteOrder(order_id=refused))
    handler = command_subscription(orders, "orders").handler

    outcomes = await handler([
        delivery(CompleteOrder(order_id=done)),
        delivery(CancelOrder(order_id=refused, reason="too late")),
    ])

    assert [o.verdict for o in outcomes] == [Verdict.DONE, Verdict.PARK]
    assert outcomes[1].error is not None and "ORDER_ALREADY_COMPLETED" in outcomes[1].error
    assert orders.get_order(done).status is OrderStatus.COMPLETED


async def test_unknown_and_malformed_commands_are_parked_at_once(orders: Orders) -> None:
    handler = command_subscription(orders, "orders").handler
    outcomes = await handler([
        delivery(type_="LaunchRocket", payload={}),
        delivery(type_="CompleteOrder", payload={"order_id": "not-a-uuid"}),
    ])
    assert [o.verdict for o in outcomes] == [Verdict.PARK, Verdict.PARK]
    assert "LaunchRocket" in (outcomes[0].error or "")
    assert "order_id" in (outcomes[1].error or "")

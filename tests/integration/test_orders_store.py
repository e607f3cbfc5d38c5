"""Orders on a real store: written once, run on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from freezegun import freeze_time

from commands.audit.timeline import as_of, history
from commands.command import parse_command
from commands.orders import (
    CancelOrder,
    CompleteOrder,
    Orders,
    PlaceOrder,
    RequestCancellation,
)
from domain.base import DomainError, NotFoundError
from domain.order import Order, OrderLine, OrderStatus
from domain.values import Address, Money
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from tests.fakes import ADDRESS, MOUSE, listed_mouse


@pytest.fixture
def orders(store_settings: Settings) -> Iterator[Orders]:
    app = listed_mouse(Orders(application_env(store_settings, "Orders")))
    yield app
    app.close()


def placement(quantity: object = 2) -> PlaceOrder:
    return parse_command(PlaceOrder, {
        "customer_id": str(uuid4()),
        "items": [{"product_id": str(MOUSE), "quantity": quantity}],
        "shipping_address": ADDRESS,
    })


def test_an_order_survives_the_store_with_exact_money(orders: Orders) -> None:
    order_id = orders.place_order(placement(3))
    order = orders.get_order(order_id)
    assert order.total == Money.of("149.97")
    assert order.lines[0].unit_price.amount.as_tuple() == Money.of("49.99").amount.as_tuple()
    assert order.shipping_address.zip_code == "62701"


def test_an_order_rebuilt_from_the_store_equals_the_live_one(orders: Orders) -> None:
    live = Order.place(uuid4(), uuid4(), [
        OrderLine(product_id=MOUSE, quantity=2, unit_price=Money.of("49.99"))
    ], Address.model_validate(ADDRESS))
    live.request_cancellation("changed my mind")
    live.cancel("changed my mind")
    orders.record([live], None)

    rebuilt = orders.get_order(live.id)

    assert rebuilt == live
    assert (rebuilt.version, rebuilt.status) == (3, OrderStatus.CANCELLED)


def test_a_repeated_command_is_handled_once_on_a_real_store(orders: Orders) -> None:
    command = placement()
    assert orders.place_order(command) == orders.place_order(command)
    complete = CompleteOrder(order_id=command.order_id)
    assert orders.complete_order(complete) is True
    assert orders.complete_order(complete) is False
    assert [e.type for e in history(orders, command.order_id)] == ["Order.Placed", "Order.Completed"]


def test_bad_input_writes_nothing_to_the_store(orders: Orders) -> None:
    orders.place_order(placement())
    before = orders.recorder.max_notification_id()
    with pytest.raises(DomainError):
        orders.place_order(placement(quantity=0))
    with pytest.raises(DomainError):
        orders.complete_order(CompleteOrder(order_id=uuid4()))
    assert orders.recorder.max_notification_id() == before


def test_the_audit_trail_reads_the_stream_in_order_with_its_ids(orders: Orders) -> None:
    command = placement()
    order_id = orders.place_order(command)
    complete = CompleteOrder(order_id=order_id)
    orders.complete_order(complete)

    trail = history(orders, order_id)

    assert [(e.version, e.type) for e in trail] == [(1, "Order.Placed"), (2, "Order.Completed")]
    assert {e.correlation_id for e in trail} == {order_id}
    assert [e.causation_id for e in trail] == [command.tracking_name, complete.tracking_name]
    assert trail[0].data["total"] == {"amount": "99.98", "currency": "USD"}
    assert [e.type for e in history(orders, order_id, from_version=2)] == ["Order.Completed"]
    assert [e.type for e in history(orders, order_id, to_version=1)] == ["Order.Placed"]


def test_an_order_loads_as_of_a_version_and_as_of_a_time(orders: Orders) -> None:
    with freeze_time("2026-01-01 09:00:00"):
        order_id = orders.place_order(placement())
    with freeze_time("2026-01-01 10:00:00"):
        orders.request_cancellation(RequestCancellation(order_id=order_id, reason="too slow"))
    with freeze_time("2026-01-01 11:00:00"):
        orders.cancel_order(CancelOrder(order_id=order_id, reason="too slow"))

    assert as_of(orders, order_id, Order, version=1).cancellation_requested is False
    assert as_of(orders, order_id, Order, version=2).cancellation_requested is True
    assert as_of(orders, order_id, Order, version=2).status is OrderStatus.PENDING
    at_half_past_ten = as_of(orders, order_id, Order, at=datetime(2026, 1, 1, 10, 30, tzinfo=UTC))
    assert (at_half_past_ten.version, at_half_past_ten.status) == (2, OrderStatus.PENDING)
    assert as_of(orders, order_id, Order, at=datetime(2026, 1, 1, 12, tzinfo=UTC)).status is (
        OrderStatus.CANCELLED
    )
    assert orders.get_order(order_id).modified_on == datetime(2026, 1, 1, 11, tzinfo=UTC)
    with pytest.raises(NotFoundError):
        as_of(orders, order_id, Order, at=datetime(2026, 1, 1, 8, tzinfo=UTC))

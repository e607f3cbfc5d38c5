"""Tracking rows make every handled message count once, whatever order messages arrive in."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from commands.orders import CompleteOrder, Orders
from domain.order import Order, OrderLine
from domain.values import Address, Money
from infra.eventstore.persistence import application_env
from infra.settings import Settings


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def orders(request: pytest.FixtureRequest) -> Iterator[Orders]:
    settings: Settings = request.getfixturevalue(f"{request.param}_settings")
    app = Orders(application_env(settings, "Orders"))
    yield app
    app.close()


def test_a_message_older_than_the_newest_handled_one_is_still_handled(orders: Orders) -> None:
    orders.record([], Tracking("Payments", 7))
    assert orders.process_recorder.has_tracking_id("Payments", 7)
    assert not orders.process_recorder.has_tracking_id("Payments", 5)
    orders.record([], Tracking("Payments", 5))
    assert orders.process_recorder.has_tracking_id("Payments", 5)


def new_order() -> Order:
    line = OrderLine(product_id=uuid4(), quantity=1, unit_price=Money.of("1.00"))
    address = Address(street="s", city="c", state="st", zip_code="z", country="US")
    return Order.place(uuid4(), uuid4(), [line], address)


def test_a_repeated_tracking_row_is_refused_as_a_duplicate_with_nothing_written(orders: Orders) -> None:
    orders.record([new_order()], Tracking("Payments", 3))
    before = orders.recorder.max_notification_id()
    with pytest.raises(IntegrityError):
        orders.record([new_order()], Tracking("Payments", 3))
    assert orders.recorder.max_notification_id() == before


def test_a_refused_command_repeated_stays_refused_and_the_store_unchanged(orders: Orders) -> None:
    command = CompleteOrder(order_id=uuid4())
    for _ in range(2):
        with pytest.raises(Exception, match="no order"):
            orders.complete_order(command)
    assert not orders.has_handled(command)

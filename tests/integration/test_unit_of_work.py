"""A batch of messages handled in one transaction: all of it is saved, or none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError

from commands.notifications import Notifications, SendNotification
from commands.orders import CompleteOrder, OrderNotFoundError, Orders, PlaceOrder, RequestCancellation
from domain.order import OrderStatus
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from tests.fakes import ADDRESS, MOUSE, FakeNotifier, listed_mouse


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def orders(request: pytest.FixtureRequest) -> Iterator[Orders]:
    settings: Settings = request.getfixturevalue(f"{request.param}_settings")
    app = listed_mouse(Orders(application_env(settings, "Orders")))
    yield app
    app.close()


def stream_loads(app: Any) -> list[object]:
    """Each stream the application's recorder reads from now on, one entry a query."""
    loads: list[object] = []
    select_events = app.recorder.select_events

    def counted(*args: Any, **kwargs: Any) -> Any:
        loads.append(args)
        return select_events(*args, **kwargs)

    app.recorder.select_events = counted
    return loads


def placement() -> PlaceOrder:
    return PlaceOrder(customer_id=uuid4(), items=[{"product_id": MOUSE, "quantity": 1}],
                      shipping_address=ADDRESS)


def test_a_batch_saves_every_decision_together(orders: Orders) -> None:
    commands = [placement() for _ in range(5)]
    heard = orders.recorder.max_notification_id() or 0  # where the catalogue Orders heard ends
    with orders.unit_of_work():
        for command in commands:
            orders.place_order(command)
        assert orders.recorder.max_notification_id() == heard, "nothing is saved before the end"
    assert orders.recorder.max_notification_id() == heard + 5
    assert all(orders.has_handled(command) for command in commands)


def test_a_later_message_in_a_batch_sees_what_an_earlier_one_decided(orders: Orders) -> None:
    command = placement()
    with orders.unit_of_work():
        orders.place_order(command)
        orders.complete_order(CompleteOrder(order_id=command.order_id))
    assert orders.get_order(command.order_id).status is OrderStatus.COMPLETED


def test_a_batch_that_fails_part_way_saves_nothing(orders: Orders) -> None:
    first = placement()
    heard = orders.recorder.max_notification_id()  # where the catalogue Orders heard ends
    with pytest.raises(OrderNotFoundError), orders.unit_of_work():
        orders.place_order(first)
        orders.complete_order(CompleteOrder(order_id=uuid4()))
    assert orders.recorder.max_notification_id() == heard
    assert not orders.has_handled(first)


def test_a_batch_holding_a_message_already_handled_saves_nothing(orders: Orders) -> None:
    handled = placement()
    orders.place_order(handled)
    fresh = placement()
    before = orders.recorder.max_notification_id()
    with pytest.raises(IntegrityError), orders.unit_of_work():
        orders.place_order(fresh)
        orders.complete_order(CompleteOrder(order_id=handled.order_id))
        orders.place_order(handled)
    assert orders.recorder.max_notification_id() == before
    assert not orders.has_handled(fresh)


def test_a_preloaded_batch_sees_what_another_process_wrote_and_asks_the_store_once(
    postgres_settings: Settings,
) -> None:
    here = listed_mouse(Orders(application_env(postgres_settings, "Orders")))
    elsewhere = listed_mouse(Orders(application_env(postgres_settings, "Orders")))
    try:
        known, fresh, unknown = placement(), placement(), uuid4()
        here.place_order(known)
        assert here.get_order(known.order_id).version == 1  # now in this process's cache
        elsewhere.place_order(fresh)
        elsewhere.request_cancellation(RequestCancellation(order_id=known.order_id, reason="changed my mind"))

        loads = stream_loads(here)
        with here.unit_of_work():
            here.preload([known.order_id, fresh.order_id, unknown])
            # The cached order is brought up to date, the one never seen here is loaded whole,
            # and the one that does not exist is known not to: no more trips to the store.
            assert here.get_order(known.order_id).cancellation_requested
            assert here.get_order(fresh.order_id).version == 1
            with pytest.raises(OrderNotFoundError):
                here.get_order(unknown)
            here.complete_order(CompleteOrder(order_id=fresh.order_id))
        assert loads == []
        assert elsewhere.get_order(fresh.order_id).status is OrderStatus.COMPLETED
    finally:
        here.close()
        elsewhere.close()


def test_a_confirmation_s_batch_looks_for_the_one_sent_before_only_in_what_it_preloaded(
    postgres_settings: Settings,
) -> None:
    notifier = FakeNotifier()
    app = Notifications(application_env(postgres_settings, "Notifications"), notifier=notifier)
    try:
        order_id, customer_id = uuid4(), uuid4()
        loads = stream_loads(app)
        for _ in range(2):  # the second request finds the first one's confirmation, and sends nothing
            with app.unit_of_work():
                app.preload(app.order_streams(order_id).values())
                app.send_notification(SendNotification(order_id=order_id, customer_id=customer_id,
                                                       subject="Order confirmed", body="Thank you."))
        assert len(notifier.outbox) == 1
        assert loads == []  # neither batch asked the store again whether it had been sent
    finally:
        app.close()

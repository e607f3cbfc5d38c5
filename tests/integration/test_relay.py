"""The outbox relay publishes every event once it is recorded, and never loses one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest

from commands.orders import CompleteOrder, Orders, PlaceOrder
from infra.eventstore.persistence import application_env
from infra.messaging.bus import EVENTS_EXCHANGE
from infra.messaging.relay import OutboxRelay
from infra.settings import Settings
from tests.fakes import ADDRESS, MOUSE, RecordingBus, listed_mouse


@pytest.fixture
async def orders(store_settings: Settings) -> AsyncIterator[Orders]:
    """Orders, its relay past the catalogue it heard: each test counts the orders' events from there."""
    app = listed_mouse(Orders(application_env(store_settings, "Orders")))
    await OutboxRelay(app, RecordingBus()).pump()
    yield app
    app.close()


async def test_the_catalogue_orders_heard_is_not_published_again(store_settings: Settings) -> None:
    orders = listed_mouse(Orders(application_env(store_settings, "Orders")))
    try:
        bus = RecordingBus()
        relay = OutboxRelay(orders, bus)

        assert await relay.pump() == 1
        assert bus.published == []
        assert relay.position == orders.recorder.max_notification_id()
    finally:
        orders.close()


def place(orders: Orders) -> UUID:
    return orders.place_order(PlaceOrder(
        customer_id=uuid4(), items=[{"product_id": MOUSE, "quantity": 1}], shipping_address=ADDRESS,
    ))


async def test_each_recorded_event_is_published_once_as_its_integration_event(orders: Orders) -> None:
    order_id = place(orders)
    orders.complete_order(CompleteOrder(order_id=order_id))
    bus = RecordingBus()
    relay = OutboxRelay(orders, bus)

    assert await relay.pump() == 2
    assert await relay.pump() == 0

    assert bus.types() == ["OrderPlaced", "OrderCompleted"]
    placed = bus.published[0][1]
    assert bus.published[0][0] == EVENTS_EXCHANGE
    assert placed.routing_key == "orders.OrderPlaced"
    assert placed.correlation_id == order_id
    assert placed.payload["total"] == {"amount": "49.99", "currency": "USD"}
    assert placed.message_id == f"Orders:{placed.position}"


async def test_a_restarted_relay_continues_from_its_recorded_position(orders: Orders) -> None:
    place(orders)
    first = RecordingBus()
    await OutboxRelay(orders, first).pump()
    place(orders)

    second = RecordingBus()
    assert await OutboxRelay(orders, second).pump() == 1

    assert len(first.published) == 1
    assert len(second.published) == 1
    assert second.published[0][1].position > first.published[0][1].position


async def test_a_failed_publish_keeps_the_position_so_nothing_is_lost(orders: Orders) -> None:
    place(orders)
    bus = RecordingBus()
    bus.failures_left = 1
    relay = OutboxRelay(orders, bus)

    with pytest.raises(ConnectionError):
        await relay.pump()
    assert await OutboxRelay(orders, bus).pump() == 1

    assert bus.types() == ["OrderPlaced"]


async def test_the_relay_publishes_in_windows(orders: Orders) -> None:
    for _ in range(7):
        place(orders)
    bus = RecordingBus()
    relay = OutboxRelay(orders, bus, window=3)
    counts = [await relay.pump() for _ in range(4)]
    assert counts == [3, 3, 1, 0]
    positions = [envelope.position for _, envelope in bus.published]
    assert positions == sorted(positions) and len(set(positions)) == 7


async def test_a_window_whose_position_is_already_recorded_counts_as_done_not_as_a_failure(
    orders: Orders,
) -> None:
    heard = orders.recorder.max_notification_id()  # the relay's position, past the catalogue
    place(orders)
    late = OutboxRelay(orders, RecordingBus())
    late.position = heard  # read before another try of the same window recorded its position
    await OutboxRelay(orders, RecordingBus()).pump()

    assert await late.pump() == 1
    assert late.position == orders.recorder.max_notification_id()
    assert await late.pump() == 0

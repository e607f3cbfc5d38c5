"""The projector on both stores: exactly once across crashes and restarts, parking, status, queries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from commands.inventory import ReserveLine, ReserveStock
from commands.orders import CancelOrder, PlaceOrder, RequestCancellation
from domain.order import Order
from infra.bootstrap import System, bootstrap
from infra.eventstore.save_listener import saves_elsewhere
from infra.messaging.bus import EVENTS_EXCHANGE, Delivery, Outcome, Subscription
from infra.messaging.in_process import InProcessBus
from infra.readstore.opening import read_store_opener
from infra.settings import Settings
from projections.applier import Applier, decode_window
from projections.changes import ChangeHub
from projections.read_model import OrderCursor, ProductRow
from projections.rebuild import Rebuild, rebuild
from projections.runner import Projector
from projections.stock_levels import StockLevels
from projections.store import Tx
from tests.saga_harness import ADDRESS, MOUSE, hear_catalogue


@pytest.fixture
async def system(store_settings: Settings) -> AsyncIterator[System]:
    built = bootstrap(store_settings)
    await asyncio.to_thread(built.inventory.seed)
    await asyncio.to_thread(hear_catalogue, built)  # as the relay and Orders' consumer would
    yield built
    built.close()


def projector_of(system: System, **options: Any) -> Projector:
    settings = system.settings
    return Projector(system, store=read_store_opener(settings), poll_interval=0.05, **options)


def place(system: System, customer_id: UUID | None = None, quantity: int = 1) -> UUID:
    items = [{"product_id": MOUSE, "quantity": quantity}]
    command = PlaceOrder(customer_id=customer_id or uuid4(), items=items, shipping_address=ADDRESS)
    return system.orders.place_order(command)


def place_and_reserve(system: System, quantity: int = 2) -> UUID:
    order_id = place(system, quantity=quantity)
    system.inventory.reserve_stock(
        ReserveStock(order_id=order_id, lines=[ReserveLine(product_id=MOUSE, quantity=quantity)])
    )
    return order_id


async def mouse(projector: Projector) -> ProductRow:
    return (await projector.read_model().products_by_id([MOUSE]))[MOUSE]


async def test_a_projector_stopped_mid_way_and_started_again_applies_every_event_once(system: System) -> None:
    for _ in range(6):
        await asyncio.to_thread(place_and_reserve, system)
    # The seed catalogue is 10 events; each reservation 3 more: the first batch stops among them.
    async with projector_of(system, batch_size=14) as first:
        await first.pump(system.inventory)
        await first.pump(system.orders)
        assert 0 < (await mouse(first)).reserved < 12
        assert (await first.read_model().orders()).total_count == 6

    async with projector_of(system, batch_size=4) as second:  # small batches: many transactions
        await second.catch_up()
        levels = await mouse(second)
        assert (levels.on_hand, levels.reserved) == (100, 12)
        assert levels.reserved == system.inventory.get_stock(MOUSE).reserved
        assert (await second.read_model().orders()).total_count == 6


async def test_a_batch_applied_again_from_an_old_position_is_refused(system: System) -> None:
    for _ in range(3):
        await asyncio.to_thread(place_and_reserve, system)
    async with projector_of(system) as projector:
        await projector.catch_up()
        window = system.inventory.recorder.select_notifications(0, 1000, inclusive_of_start=False)
        last, items = window[-1].id, decode_window(system.inventory, window, StockLevels.topics)

        again = await Applier(projector.store, ChangeHub()).apply(StockLevels(), "Inventory", 0, last, items)

        assert again is False
        assert (await mouse(projector)).reserved == 6


class DiesBeforeCommit(StockLevels):
    """Writes its rows, then fails, as a process killed before the commit would."""

    async def save(self, tx: Tx, rows: Any) -> None:
        await super().save(tx, rows)
        raise ConnectionError("killed")


async def test_a_batch_that_dies_before_its_commit_leaves_no_rows_and_no_position(system: System) -> None:
    for _ in range(3):
        await asyncio.to_thread(place_and_reserve, system)
    async with projector_of(system, projections=[DiesBeforeCommit()]) as dying:
        with pytest.raises(ConnectionError):
            await dying.pump(system.inventory)
        assert await dying.read_model().products() == []

    async with projector_of(system) as projector:
        await projector.catch_up()
        assert (await mouse(projector)).reserved == 6


def poison(system: System) -> None:
    """A Placed whose customer is no id, and an event that is not even JSON, between good orders."""
    bad_placed = b'{"timestamp": "2026-01-01T00:00:00Z", "customer_id": "nobody", "lines": []}'
    system.orders.recorder.insert_events([
        StoredEvent(uuid4(), 1, get_topic(Order.Placed), bad_placed),
        StoredEvent(uuid4(), 1, get_topic(Order.Placed), b"\x00 not json"),
    ])


async def test_an_event_a_projection_cannot_apply_is_parked_and_the_rest_go_on(
    system: System, caplog: pytest.LogCaptureFixture
) -> None:
    heard = system.orders.recorder.max_notification_id() or 0  # Orders' log opens with its catalogue
    before = await asyncio.to_thread(place, system)
    await asyncio.to_thread(poison, system)
    after = await asyncio.to_thread(place_and_reserve, system)
    async with projector_of(system) as projector:
        with caplog.at_level(logging.ERROR, logger="projections"):
            await projector.catch_up()
        model = projector.read_model()

        assert set(await model.orders_by_id([before, after])) == {before, after}
        parked = await model.projection_failures()
        assert [(f.projection, f.notification_id) for f in parked] == [
            ("order_summary", heard + 2), ("order_summary", heard + 3)]
        assert "UUID" in parked[0].error and "JSON" in parked[1].error
        assert sum("parked" in r.message for r in caplog.records) == 2
        status = {row.name: row for row in await model.projection_status()}
        assert (status["order_summary"].failed, status["order_summary"].lag) == (2, 0)
        assert (status["stock_levels"].failed, (await mouse(projector)).reserved) == (0, 2)


async def test_status_shows_each_projection_s_lag_until_it_catches_up(system: System) -> None:
    heard = system.orders.recorder.max_notification_id() or 0  # Orders' log opens with its catalogue
    for _ in range(2):
        await asyncio.to_thread(place, system)
    async with projector_of(system) as projector:
        behind = {row.name: row for row in await projector.read_model().projection_status()}
        assert (behind["order_summary"].position, behind["order_summary"].lag) == (0, heard + 2)

        await projector.catch_up()

        caught_up = await projector.read_model().projection_status()
        assert all(row.lag == 0 for row in caught_up)
        assert {row.name: row.position for row in caught_up}["order_summary"] == heard + 2


async def test_orders_come_newest_first_a_page_at_a_time(system: System) -> None:
    customer, other = uuid4(), uuid4()
    placed = [await asyncio.to_thread(place, system, customer) for _ in range(5)]
    await asyncio.to_thread(place, system, other)
    await asyncio.to_thread(
        system.orders.cancel_order, CancelOrder(order_id=placed[0], reason="out of stock")
    )
    async with projector_of(system) as projector:
        await projector.catch_up()
        model = projector.read_model()

        seen: list[UUID] = []
        after: OrderCursor | None = None
        while True:
            page = await model.orders(customer_id=customer, first=2, after=after)
            assert page.total_count == 5
            seen += [row.id for row in page.rows]
            if not page.has_next_page:
                break
            after = OrderCursor(page.rows[-1].created_at, page.rows[-1].id)
        assert seen == placed[::-1]
        assert (await model.orders(first=50)).total_count == 6
        cancelled = await model.orders(status="CANCELLED")
        assert [row.id for row in cancelled.rows] == [placed[0]]
        assert cancelled.rows[0].failure_reason == "out of stock"
        assert cancelled.rows[0].items[0].product_name == "Wireless Mouse"


async def test_order_changes_yields_the_order_and_again_after_each_change(system: System) -> None:
    command = PlaceOrder(customer_id=uuid4(), items=[{"product_id": MOUSE, "quantity": 1}],
                         shipping_address=ADDRESS)
    order_id = command.order_id
    async with projector_of(system) as projector:
        await projector.catch_up()  # the catalogue's names are projected: only the order changes below
        stopping = asyncio.Event()
        running = asyncio.create_task(projector.run(stopping))
        changes = projector.read_model().order_changes(order_id)
        try:
            first = asyncio.ensure_future(anext(changes))
            await asyncio.to_thread(system.orders.place_order, command)
            placed = await asyncio.wait_for(first, 5)
            assert (placed.status, placed.version) == ("PENDING", 1)
            await asyncio.to_thread(system.orders.request_cancellation,
                                    RequestCancellation(order_id=order_id, reason="changed my mind"))
            assert (await asyncio.wait_for(anext(changes), 5)).version == 2
            cancel = CancelOrder(order_id=order_id, reason="asked")
            await asyncio.to_thread(system.orders.cancel_order, cancel)
            assert (await asyncio.wait_for(anext(changes), 5)).status == "CANCELLED"

            row = await projector.read_model().wait_for_order(order_id, 3, timeout=5)
            assert row is not None and row.version == 3
            assert await projector.read_model().wait_for_order(order_id, 4, timeout=0.2) is None
        finally:
            await changes.aclose()
            stopping.set()
            await running


async def test_a_rebuild_swapped_in_under_a_running_projector_loses_doubles_and_rewinds_nothing(
    system: System,
) -> None:
    for _ in range(4):
        await asyncio.to_thread(place_and_reserve, system)
    async with projector_of(system, batch_size=3) as projector:
        await projector.catch_up()
        stopping = asyncio.Event()
        running = asyncio.create_task(projector.run(stopping))
        def write_more() -> None:
            for _ in range(8):
                place_and_reserve(system)

        writing = asyncio.ensure_future(asyncio.to_thread(write_more))
        seen: list[int] = []

        async def read_until_written() -> None:
            while not writing.done():
                seen.append((await mouse(projector)).reserved)
                await asyncio.sleep(0.005)

        reading = asyncio.create_task(read_until_written())
        await rebuild(projector, ["stock_levels", "order_summary"], batch_size=2)
        await writing
        await reading
        await until_at_rest(projector)
        stopping.set()
        await running

        assert (await mouse(projector)).reserved == 24 == system.inventory.get_stock(MOUSE).reserved
        assert (await projector.read_model().orders()).total_count == 12
        assert seen == sorted(seen)  # readers never saw the rows go back in time


async def test_a_rebuild_behind_the_live_projection_catches_up_as_it_is_swapped_in(system: System) -> None:
    for _ in range(2):
        await asyncio.to_thread(place_and_reserve, system)
    async with projector_of(system) as projector:
        replaying = Rebuild(projector, StockLevels(), batch_size=100)
        await replaying.prepare()
        await replaying.replay("Inventory", 0, await replaying.head_of("Inventory"))
        for _ in range(2):
            await asyncio.to_thread(place_and_reserve, system)
        await projector.catch_up()
        assert (await mouse(projector)).reserved == 8

        await replaying.swap_in()

        assert (await mouse(projector)).reserved == 8
        status = {row.name: row for row in await projector.read_model().projection_status()}
        assert status["stock_levels"].lag == 0


async def until_at_rest(projector: Projector) -> None:
    for _ in range(200):
        if not any(row.lag for row in await projector.read_model().projection_status()):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(await projector.read_model().projection_status())


async def test_orders_placed_by_another_process_are_projected_promptly(system: System) -> None:
    # On PostgreSQL only the event store's NOTIFY can wake the projector this soon; SQLite polls.
    poll = 30.0 if system.settings.postgres else 0.05
    system.applications  # noqa: B018 - creates every table before the other process starts
    # Other application objects, so no in-process listener; like a replica, they create no tables.
    elsewhere = bootstrap(system.settings.model_copy(update={"create_table": False}))
    # The process's one listener for saves elsewhere, as the runtime runs it beside the projector.
    listen = saves_elsewhere(system.settings, system.applications)
    async with projector_of(system) as projector:
        projector.poll_interval = poll
        stopping = asyncio.Event()
        running = asyncio.create_task(projector.run(stopping))
        listening = asyncio.create_task(listen()) if listen is not None else None
        try:
            for _ in range(10):  # the first may be placed before the projector listens
                order_id = await asyncio.to_thread(place, elsewhere)
                if await projector.read_model().wait_for_order(order_id, 1, timeout=1.0):
                    break
            else:
                raise AssertionError("no order placed elsewhere was projected within a second")
        finally:
            stopping.set()
            await running
            if listening is not None:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)
            elsewhere.close()


async def test_parked_messages_are_listed_from_the_bus(system: System) -> None:
    bus = InProcessBus(retry_delays=(0.01,))
    await bus.start()

    async def handle(deliveries: Sequence[Delivery]) -> list[Outcome]:
        return [Outcome.done() for _ in deliveries]

    await bus.subscribe(Subscription("payments", EVENTS_EXCHANGE, ("orders.#",), handle))
    await bus.publish_raw(EVENTS_EXCHANGE, "orders.OrderPlaced", b"not an envelope", "OrderPlaced")
    try:
        async with projector_of(system, bus=bus) as projector:
            for _ in range(100):
                await projector.refresh_dead_letters()
                if await projector.read_model().dead_letters():
                    break
                await asyncio.sleep(0.02)
            [letter] = await projector.read_model().dead_letters("payments")
            assert (letter.message_type, letter.attempts) == ("OrderPlaced", 1)
            assert "unparseable" in letter.error
            assert await projector.read_model().dead_letters("inventory") == []
    finally:
        await bus.close()


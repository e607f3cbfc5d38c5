"""A background loop that breaks is restarted, named in readiness while down, counted, and loses nothing.

Each test breaks one loop of a running process on purpose (its store, its
broker, its lock, the deadline index), sees readiness name it after the grace
period, mends it, and sees readiness clear and every event published once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import process_managers.deadlines
import projections.tracking
from domain.payment import Payment
from infra.bootstrap import System, assemble, bootstrap
from infra.eventstore import save_listener
from infra.messaging.bus import Bus
from infra.messaging.in_process import InProcessBus
from infra.messaging.rabbitmq_consumer import Consumer
from infra.messaging.sqlite_queue import SqliteQueues
from infra.runtime import Runtime
from infra.settings import Settings
from infra.supervision import LoopPolicy
from process_managers.state import SagaStatus
from tests.fakes import RecordingBus
from tests.saga_harness import WORKER_ROLES, finished, hear_catalogue, place

QUICK = LoopPolicy(first=0.02, cap=0.1, steady=0.3, grace=0.3)


class Switch:
    """Breaks what it wraps while on, with an error of its own."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.on = True
        self.tripped = 0

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def broken(*args: Any, **kwargs: Any) -> Any:
            if self.on:
                self.tripped += 1
                raise self.error
            return call(*args, **kwargs)

        return broken


@asynccontextmanager
async def runtime_of(settings: Settings, bus: Bus, roles: Iterable[str]) -> AsyncIterator[Runtime]:
    with bootstrap(settings) as system:
        system.inventory.seed()
        hear_catalogue(system)  # as the relay and Orders' consumer would
        runtime = Runtime(assemble(system.settings, roles, system=system, bus=bus, seed=False), loops=QUICK)
        await runtime.start()
        try:
            yield runtime
        finally:
            await runtime.stop()


async def eventually(check: Callable[[], Any], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.02)


async def down_then_up(runtime: Runtime, loop: str, mend: Callable[[], None]) -> None:
    """Readiness names the loop once it has been down for the grace period, and clears once mended."""

    async def named() -> bool:
        return f"loop: {loop}" in (await runtime.check()).get("down", ())

    await eventually(named)
    report = await runtime.check()
    assert report["status"] == "unavailable"
    mend()

    async def ready() -> bool:
        report = await runtime.check()  # it may also name what it leads (`leads`)
        return report["status"] == "ok" and "down" not in report

    await eventually(ready)


def restarts(runtime: Runtime, loop: str) -> float:
    value = runtime.metrics.registry.get_sample_value("saga_loop_restarts_total", {"loop": loop})
    return value or 0.0


async def published_once(system: System, bus: RecordingBus, orders: int) -> None:
    """Every order placed is published, each exactly once, and the relay is at the end of the log."""

    async def all_out() -> bool:
        return bus.types().count("OrderPlaced") >= orders

    await eventually(all_out)
    await asyncio.sleep(0.2)  # a window published twice would be in by now
    ids = [envelope.message_id for _, envelope in bus.published if envelope.source == "Orders"]
    assert len(ids) == len(set(ids)) == orders
    tracked = system.orders.process_recorder.max_tracking_id("relay:Orders")
    assert tracked == system.orders.recorder.max_notification_id()


async def test_a_relay_whose_store_fails_is_restarted_and_publishes_each_event_once(
    store_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = RecordingBus()
    async with runtime_of(store_settings, bus, ["relay"]) as runtime:
        system = runtime.system
        recorder = system.orders.recorder
        store = Switch(ConnectionError("the event store went away"))
        monkeypatch.setattr(recorder, "select_notifications", store.wrap(recorder.select_notifications))
        for _ in range(3):
            await asyncio.to_thread(place, system)

        await down_then_up(runtime, "relay Orders", lambda: setattr(store, "on", False))

        await published_once(system, bus, 3)
        assert restarts(runtime, "relay Orders") == store.tripped >= 2


async def test_a_relay_whose_broker_fails_is_restarted_and_publishes_each_event_once(
    memory_settings: Settings,
) -> None:
    bus = RecordingBus()
    async with runtime_of(memory_settings, bus, ["relay"]) as runtime:
        system = runtime.system
        bus.failures_left = 10**6
        for _ in range(3):
            await asyncio.to_thread(place, system)

        await down_then_up(runtime, "relay Orders", lambda: setattr(bus, "failures_left", 0))

        await published_once(system, bus, 3)
        assert restarts(runtime, "relay Orders") >= 2


async def test_a_relay_whose_lock_fails_unexpectedly_is_restarted_and_publishes_each_event_once(
    postgres_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = RecordingBus()
    async with runtime_of(postgres_settings, bus, ["relay"]) as runtime:
        system = runtime.system
        [relay] = [r for r in runtime.relays if r.app is system.orders]
        lock = Switch(RuntimeError("an error nobody expected"))
        acquire = relay.leadership.acquire

        async def acquire_unless_broken() -> bool:
            lock.wrap(lambda: None)()
            return await acquire()

        monkeypatch.setattr(relay.leadership, "acquire", acquire_unless_broken)
        for _ in range(3):
            await asyncio.to_thread(place, system)

        await down_then_up(runtime, "relay Orders", lambda: setattr(lock, "on", False))

        await published_once(system, bus, 3)
        assert restarts(runtime, "relay Orders") == lock.tripped >= 2


async def test_a_projector_whose_read_store_fails_is_restarted_and_projects_each_order_once(
    memory_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Switch(ConnectionError("the read store went away"))
    monkeypatch.setattr(projections.tracking, "all_positions", store.wrap(projections.tracking.all_positions))
    async with runtime_of(memory_settings, InProcessBus(), ["projector"]) as runtime:
        system, projector = runtime.system, runtime.projector
        assert projector is not None
        placed = [await asyncio.to_thread(place, system) for _ in range(3)]

        await down_then_up(runtime, "projector Orders", lambda: setattr(store, "on", False))

        for order_id in placed:
            assert await projector.read_model().wait_for_order(order_id, 1, timeout=5) is not None
        listed = await projector.read_model().orders()
        assert sorted(row.id for row in listed.rows) == sorted(placed)
        assert restarts(runtime, "projector Orders") >= 2


async def test_a_consumer_whose_bus_fails_is_restarted_and_every_order_is_charged_once(
    stack: tuple[Settings, Bus], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, bus = stack
    settings = settings.model_copy(update={"payment_failure_rate": 0, "shipping_failure_rate": 0,
                                           "notification_failure_rate": 0})
    broken = Switch(ConnectionError("the queue went away"))
    if isinstance(bus, InProcessBus):
        # The SQLite queue the consumer takes its batches from.
        take = SqliteQueues.take

        def take_unless_broken(queues: SqliteQueues, queue: str, *args: Any) -> Any:
            if queue == "payments":
                broken.wrap(lambda: None)()
            return take(queues, queue, *args)

        monkeypatch.setattr(SqliteQueues, "take", take_unless_broken)
    else:
        # Settling a batch on the broker: the batch goes back to the queue, and the loop ends.
        handle = Consumer._handle

        async def handle_unless_broken(consumer: Consumer, batch: Any) -> None:
            if consumer.name == "consumer payments" and batch:
                broken.wrap(lambda: None)()
            await handle(consumer, batch)

        monkeypatch.setattr(Consumer, "_handle", handle_unless_broken)
    async with runtime_of(settings, bus, WORKER_ROLES) as runtime:
        system = runtime.system
        placed = [await asyncio.to_thread(place, system) for _ in range(3)]

        await down_then_up(runtime, "consumer payments", lambda: setattr(broken, "on", False))

        for order_id in placed:
            assert (await finished(system, order_id)).status is SagaStatus.COMPLETED
        charges = [
            stored for order_id in placed
            for stored in system.payments.recorder.select_events(Payment.create_id(order_id))
            if stored.topic.endswith("Payment.Charged")
        ]
        assert len(charges) == len(placed)
        assert restarts(runtime, "consumer payments") == broken.tripped >= 2


async def test_the_deadline_loop_whose_index_cannot_be_built_is_restarted(
    memory_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = Switch(ConnectionError("the saga store went away"))
    monkeypatch.setattr(process_managers.deadlines, "DeadlineIndex",
                        index.wrap(process_managers.deadlines.DeadlineIndex))
    async with runtime_of(memory_settings, InProcessBus(), ["saga"]) as runtime:
        await down_then_up(runtime, "saga deadlines", lambda: setattr(index, "on", False))

        assert restarts(runtime, "saga deadlines") == index.tripped >= 2
        [state] = [s for s in runtime.supervisor.states() if s.name == "saga deadlines"]
        assert state.running and state.last_error == "ConnectionError"


async def test_a_relay_whose_recorded_position_answer_is_lost_moves_on_and_publishes_nothing_twice(
    store_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = RecordingBus()
    async with runtime_of(store_settings, bus, ["relay"]) as runtime:
        system = runtime.system
        recorder = system.orders.process_recorder
        insert_tracking, lost = recorder.insert_tracking, list[Any]()

        def commits_then_loses_the_answer(tracking: Any) -> None:
            insert_tracking(tracking)
            if tracking.application_name == "relay:Orders" and not lost:
                lost.append(tracking)
                raise ConnectionError("the connection closed before the answer came")

        monkeypatch.setattr(recorder, "insert_tracking", commits_then_loses_the_answer)
        for _ in range(2):
            await asyncio.to_thread(place, system)

        await published_once(system, bus, 2)
        await asyncio.to_thread(place, system)
        await published_once(system, bus, 3)
        assert lost and restarts(runtime, "relay Orders") == 1


async def test_a_save_listener_that_fails_is_restarted_and_the_followers_keep_following(
    postgres_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = Switch(ConnectionError("the LISTEN connection closed"))
    listen = save_listener.listen_for_saves

    async def listen_unless_broken(*args: Any) -> None:
        listener.wrap(lambda: None)()
        await listen(*args)

    monkeypatch.setattr(save_listener, "listen_for_saves", listen_unless_broken)
    async with runtime_of(postgres_settings, InProcessBus(), ["projector"]) as runtime:
        system, projector = runtime.system, runtime.projector
        assert projector is not None
        # Each application's follower is a loop of its own: they project while the listener is down.
        order_id = await asyncio.to_thread(place, system)
        row = await projector.read_model().wait_for_order(order_id, 1, timeout=5)

        await down_then_up(runtime, "save listener", lambda: setattr(listener, "on", False))

    assert row is not None
    assert restarts(runtime, "save listener") == listener.tripped >= 2
    assert restarts(runtime, "projector Orders") == 0

"""Of several relays of one application, one publishes; a standby takes over when it goes."""

from __future__ import annotations

import asyncio
import contextlib
from uuid import uuid4

import asyncpg
import pytest

from commands.orders import Orders, PlaceOrder
from infra.eventstore.persistence import application_env
from infra.messaging.leadership import AdvisoryLockLeadership
from infra.messaging.relay import OutboxRelay
from infra.settings import PostgresDsn, Settings
from tests.fakes import ADDRESS, MOUSE, RecordingBus, listed_mouse


async def test_only_one_holder_of_a_name_leads_until_it_lets_go(postgres_database: PostgresDsn) -> None:
    name = f"relay:test:{uuid4()}"
    first = AdvisoryLockLeadership(postgres_database, name)
    second = AdvisoryLockLeadership(postgres_database, name)
    try:
        assert await first.acquire()
        assert await first.acquire(), "a leader stays leader"
        assert not await second.acquire()
        await first.release()
        assert await second.acquire()
        assert not await first.acquire()
    finally:
        await first.release()
        await second.release()


async def test_two_relays_of_one_application_publish_each_event_once(postgres_settings: Settings) -> None:
    orders = listed_mouse(Orders(application_env(postgres_settings, "Orders")))
    dsn = postgres_settings.postgres
    assert dsn is not None
    name = f"relay:{dsn.schema_name}:Orders"
    bus = RecordingBus()
    relays = [
        OutboxRelay(orders, bus, poll_interval=0.05, leadership=AdvisoryLockLeadership(dsn, name))
        for _ in range(2)
    ]
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stopping)) for relay in relays]
    try:
        for _ in range(20):
            await asyncio.to_thread(orders.place_order, PlaceOrder(
                customer_id=uuid4(), items=[{"product_id": MOUSE, "quantity": 1}], shipping_address=ADDRESS,
            ))
        for _ in range(200):
            if len(bus.published) >= 20:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
    finally:
        stopping.set()
        await asyncio.gather(*tasks)
        orders.close()
    positions = [envelope.position for _, envelope in bus.published]
    assert len(positions) == 20
    assert positions == sorted(set(positions))


async def test_a_relay_cancelled_while_it_leads_lets_go_at_once_so_a_standby_takes_over(
    postgres_settings: Settings,
) -> None:
    orders = listed_mouse(Orders(application_env(postgres_settings, "Orders")))
    dsn = postgres_settings.postgres
    assert dsn is not None
    name = f"relay:{dsn.schema_name}:Orders"
    leader = AdvisoryLockLeadership(dsn, name)
    relay = OutboxRelay(orders, RecordingBus(), poll_interval=0.05, leadership=leader)
    standby = AdvisoryLockLeadership(dsn, name)
    task = asyncio.create_task(relay.run(asyncio.Event()))
    try:
        for _ in range(100):
            if leader._leading:
                break
            await asyncio.sleep(0.05)
        assert not await standby.acquire(), "the relay leads while it runs"
        # A runtime that stops cancels its relays: the lead, and the session that holds it, go with it.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await standby.acquire(), "the cancelled relay still holds the lead"
    finally:
        await standby.release()
        orders.close()


async def test_a_lock_check_that_fails_unexpectedly_lets_go_of_the_lead_and_raises(
    postgres_database: PostgresDsn, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"relay:test:{uuid4()}"
    leader = AdvisoryLockLeadership(postgres_database, name)
    standby = AdvisoryLockLeadership(postgres_database, name)
    try:
        assert await leader.acquire()

        def unexpected(*args: object, **kwargs: object) -> None:
            raise RuntimeError("an error of no expected kind")

        monkeypatch.setattr(asyncpg.connection.Connection, "fetchval", unexpected)
        with pytest.raises(RuntimeError):
            await leader.acquire()
        monkeypatch.undo()

        assert await standby.acquire(), "the lead went with the session it let go"
    finally:
        await leader.release()
        await standby.release()

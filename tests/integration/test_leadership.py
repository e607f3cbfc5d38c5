"""Of several relays of one application, one publishes; a standby takes over when it goes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
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
    leader = AdvisoryLockLeadership(postgres_database, name, check_every=0)  # asks its session every time
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


async def test_a_leader_asks_its_session_again_only_once_its_last_answer_is_old(
    postgres_database: PostgresDsn, monkeypatch: pytest.MonkeyPatch
) -> None:
    leader = AdvisoryLockLeadership(postgres_database, f"relay:test:{uuid4()}", check_every=0.3)
    asked: list[str] = []
    fetchval = asyncpg.connection.Connection.fetchval

    async def counted(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(query)
        return await fetchval(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "fetchval", counted)
    try:
        assert await leader.acquire()
        for _ in range(20):
            assert await leader.acquire()
        assert asked == ["SELECT pg_try_advisory_lock($1)"], "a fresh answer is asked again"
        await asyncio.sleep(0.35)
        assert await leader.acquire()
        assert asked[1:] == ["SELECT 1"], "an old answer is not asked again"
    finally:
        await leader.release()


async def test_a_leader_whose_session_the_server_ends_knows_it_at_once(
    postgres_database: PostgresDsn,
) -> None:
    name = f"relay:test:{uuid4()}"
    leader = AdvisoryLockLeadership(postgres_database, name, check_every=3600)
    standby = AdvisoryLockLeadership(postgres_database, name)
    try:
        assert await leader.acquire()
        connection = leader.session._connection
        assert connection is not None
        admin = await asyncpg.connect(**postgres_database.connect_args)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", connection.get_server_pid())
        finally:
            await admin.close()
        for _ in range(50):  # the loop hears the socket close
            if connection.is_closed():
                break
            await asyncio.sleep(0.02)
        assert await standby.acquire(), "the server let the lock go with the session"
        assert not await leader.acquire(), "a leader whose session ended still leads"
    finally:
        await leader.release()
        await standby.release()

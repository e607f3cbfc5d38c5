"""Saga copies' deadline schedulers: the one that leads fires a deadline, once; a standby takes over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from uuid import UUID

import pytest

from commands.audit.timeline import history
from infra.elections import deadline_leadership
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from process_managers.application import Sagas
from process_managers.scheduler import DeadlineScheduler
from process_managers.steps import StepName
from projections.catalog import all_projections
from tests.integration.test_projector_leadership import lock_key, within
from tests.saga_harness import started
from tests.sagas import T0, TIMEOUT, Order


class CountedSagas(Sagas):
    """The saga application of one copy, counting the deadlines it was asked to fire."""

    asked = 0

    def time_out(
        self, order_id: UUID, step: StepName | str, attempt: int, now: datetime | None = None
    ) -> bool:
        self.asked += 1
        return super().time_out(order_id, step, attempt, now)


class SagaCopy:
    def __init__(self, settings: Settings, clock: list[datetime]) -> None:
        self.sagas = CountedSagas(application_env(settings, "OrderFulfillment"), step_timeout=TIMEOUT,
                                  clock=lambda: clock[0])
        lead = deadline_leadership(settings, self.sagas.name)
        self.scheduler = DeadlineScheduler(self.sagas, lambda: clock[0], lead=lead, every=0.05)
        self.task = asyncio.create_task(self.scheduler.run(asyncio.Event()))

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.sagas.close()


@pytest.fixture
def clock() -> list[datetime]:
    return [T0]


@pytest.fixture
async def copies(postgres_settings: Settings, clock: list[datetime]) -> AsyncIterator[list[SagaCopy]]:
    running = [SagaCopy(postgres_settings, clock)]
    await within(10, lambda: running[0].scheduler.leads)
    running.append(SagaCopy(postgres_settings, clock))
    yield running
    for copy in running:
        await copy.stop()


def timeouts(sagas: Sagas, order: Order) -> int:
    return sum(e.type == "OrderFulfillment.StepTimedOut" for e in history(sagas, order.saga_id))


async def test_a_deadline_fires_once_in_the_leading_copy_and_the_next_in_a_standby_after_its_death(
    copies: list[SagaCopy], clock: list[datetime], postgres_settings: Settings,
) -> None:
    leader, standby = copies
    first, second = Order.new(), Order.new()
    await asyncio.to_thread(leader.sagas.handle_event, first.placed(), None)
    clock[0] = T0 + timedelta(seconds=10)
    await asyncio.to_thread(leader.sagas.handle_event, second.placed(), None)

    clock[0] = T0 + TIMEOUT
    await within(10, lambda: timeouts(leader.sagas, first) == 1)
    length = len(history(leader.sagas, first.saga_id))
    await asyncio.sleep(0.5)  # both schedulers tick ten times more
    assert standby.sagas.asked == 0, "the standby fired deadlines while the leader lived"
    assert not standby.scheduler.leads
    assert (timeouts(leader.sagas, first), len(history(leader.sagas, first.saga_id))) == (1, length)

    await kill_leader(postgres_settings, leader)
    clock[0] = T0 + timedelta(seconds=10) + TIMEOUT
    took = await within(10, lambda: timeouts(standby.sagas, second) == 1)
    assert took < 5
    assert standby.scheduler.leads and standby.sagas.asked == 1
    assert timeouts(standby.sagas, first) == 1, "the first deadline fired again"


async def kill_leader(settings: Settings, copy: SagaCopy) -> None:
    """As kill -9 would leave it: the session of its lock cut by the server, its loop gone."""
    import asyncpg

    dsn = settings.database_of(copy.sagas.name)
    assert dsn is not None
    key = lock_key(f"deadlines:{dsn.schema_name or 'public'}:{copy.sagas.name}")
    connection = await asyncpg.connect(**dsn.connect_args)
    try:
        terminated = await connection.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1", key,
        )
        assert terminated
    finally:
        await connection.close()
    copy.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await copy.task


async def test_of_two_processes_with_the_projector_and_saga_roles_one_leads_and_the_other_stands_by_ready(
    postgres_settings: Settings,
) -> None:
    roles = ("projector", "saga")
    everything = sorted([*(p.name for p in all_projections()), "dead_letters", "saga deadlines"])
    async with started(postgres_settings, roles=roles) as first:
        await within(10, lambda: sorted(first.leads()) == everything)
        async with started(postgres_settings, roles=roles) as second:
            await asyncio.sleep(0.5)
            reports = [await first.check(), await second.check()]
    assert [r["status"] for r in reports] == ["ok", "ok"], "a standby is ready"
    assert sorted(reports[0]["leads"]) == everything
    assert "leads" not in reports[1], "the standby leads nothing"

"""Projector copies over one read store: one leads each projection, a standby takes over from a dead one."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from commands.inventory import ReserveLine, ReserveStock
from infra.bootstrap import System, bootstrap
from infra.elections import projection_leads
from infra.parallel_rebuild import rebuild_projections
from infra.readstore.opening import read_store_opener
from infra.settings import PostgresDsn, Settings
from projections.catalog import AnyProjection, all_projections
from projections.runner import Projector
from projections.store import Tx
from tests.integration.test_parallel_rebuild import every_row
from tests.saga_harness import MOUSE
from tests.sagas import Order

NAMES = frozenset(p.name for p in all_projections())


@pytest.fixture
async def system(postgres_settings: Settings) -> AsyncIterator[System]:
    built = bootstrap(postgres_settings)
    await asyncio.to_thread(built.inventory.seed)
    yield built
    built.close()


class Copy:
    """One projector process: its projections count the windows it applies."""

    def __init__(self, system: System) -> None:
        self.applied: Counter[str] = Counter()
        projections = [self._counted(p) for p in all_projections()]
        self.projector = Projector(system, store=read_store_opener(system.settings), projections=projections,
                                   poll_interval=0.05, leads=projection_leads(system.settings))
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.projector.start()
        self.task = asyncio.create_task(self.projector.run(self.stopping))

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        await self.projector.close()

    def _counted(self, projection: AnyProjection) -> AnyProjection:
        save, applied = projection.save, self.applied

        async def counted(tx: Tx, rows: Any) -> None:
            applied[projection.name] += 1  # called once per window whose position it claimed
            await save(tx, rows)

        setattr(projection, "save", counted)  # noqa: B010 - a method of this instance only
        return projection


async def within(seconds: float, condition: Callable[[], Awaitable[bool] | bool]) -> float:
    """How long `condition` took to hold; fails after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        met = condition()
        if met if isinstance(met, bool) else await met:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {seconds}s")


async def kill(dsn: PostgresDsn, copy: Copy) -> None:
    """As kill -9 would leave it: its lock session cut by the server, its loops gone without a word."""
    schema = dsn.schema_name or "public"
    keys = [lock_key(f"projection:{schema}:{name}") for name in NAMES]
    connection = await asyncpg.connect(**dsn.connect_args)
    try:
        pids = {r["pid"] for r in await connection.fetch(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND ((classid::bigint << 32) | objid::bigint) = ANY($1::bigint[])", keys,
        )}
        assert len(pids) == 1, "one session holds the copy's every lead"
        await connection.execute("SELECT pg_terminate_backend($1)", pids.pop())
    finally:
        await connection.close()
    assert copy.task is not None
    copy.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await copy.task


def order_and_reserve(system: System) -> None:
    """An order heard by the saga, and its stock reserved: two logs, several projections."""
    order = Order.new()
    system.sagas.handle_event(order.placed(), None)
    system.inventory.reserve_stock(
        ReserveStock(order_id=order.order_id, lines=[ReserveLine(product_id=MOUSE, quantity=1)])
    )


def lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def test_two_projector_copies_apply_each_projection_once_and_a_standby_takes_over_from_a_dead_leader(
    system: System, postgres_settings: Settings,
) -> None:
    dsn = postgres_settings.read_database
    assert dsn is not None
    leader, standby = Copy(system), Copy(system)
    await leader.start()
    await within(10, lambda: leader.projector.leading.held == NAMES)
    await standby.start()
    placed = 0

    async def load(orders: int) -> None:
        nonlocal placed
        for _ in range(orders):
            await asyncio.to_thread(order_and_reserve, system)
            placed += 1

    loading = asyncio.create_task(load(40))
    try:
        await within(20, lambda: placed >= 15)
        assert standby.projector.leading.held == frozenset(), "the standby leads nothing yet"
        assert not standby.applied, "the standby applied windows of projections it did not lead"
        assert leader.applied["saga_progress"] > 0 and leader.applied["stock_levels"] > 0

        await kill(dsn, leader)
        took_over = await within(10, lambda: standby.projector.leading.held == NAMES)
        assert took_over < 5
        await loading
        await within(20, lambda: caught_up(standby.projector))
    finally:
        loading.cancel()
        await standby.stop()
        await leader.projector.close()

    assert standby.applied["saga_progress"] > 0, "the standby went on applying after the takeover"
    live = await every_row(postgres_settings)
    assert len(live["read_sagas"]) == 40
    await asyncio.to_thread(rebuild_projections, postgres_settings, None, jobs=1)
    assert await every_row(postgres_settings) == live


async def caught_up(projector: Projector) -> bool:
    return all(row.lag == 0 for row in await projector.read_model().projection_status())

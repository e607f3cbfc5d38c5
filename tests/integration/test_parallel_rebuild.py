"""`saga projections rebuild --jobs 2`: the projections shared out to worker processes."""

from __future__ import annotations

import asyncio
from typing import Any

from infra.bootstrap import bootstrap
from infra.parallel_rebuild import rebuild_projections
from infra.readstore.opening import open_read_store, read_store_opener
from infra.settings import Settings
from projections.catalog import all_projections
from projections.runner import Projector
from tests.saga_harness import KEYBOARD, MOUSE, finished, place, running


async def every_row(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    store = await open_read_store(settings)
    try:
        rows = {}
        for projection in all_projections():
            table = projection.table.name
            rows[table] = sorted((tuple(r) for r in await store.fetch(f"SELECT * FROM {table}")), key=str)
        return rows
    finally:
        await store.close()


async def saga_orders(settings: Settings) -> None:
    """Four orders through the saga: three completed, one compensated."""
    async with running(settings) as system:
        orders = [place(system, (MOUSE, 1), (KEYBOARD, 2)) for _ in range(3)]
        orders.append(place(system, (KEYBOARD, 31)))  # more than there are: compensated
        for order_id in orders:
            await finished(system, order_id)


async def test_a_rebuild_in_two_processes_gives_the_rows_the_live_projector_built(
    postgres_settings: Settings,
) -> None:
    await saga_orders(postgres_settings)
    with bootstrap(postgres_settings) as system:
        async with Projector(system, store=read_store_opener(postgres_settings)) as projector:
            await projector.catch_up()
    live = await every_row(postgres_settings)
    assert len(live["read_orders"]) == 4

    rebuilt = await asyncio.to_thread(rebuild_projections, postgres_settings, None, jobs=2)

    assert sorted(rebuilt) == sorted(p.name for p in all_projections())
    assert await every_row(postgres_settings) == live


def test_a_rebuild_in_two_processes_on_sqlite_gives_the_rows_a_rebuild_in_one_gives(
    sqlite_settings: Settings,
) -> None:
    asyncio.run(saga_orders(sqlite_settings))
    rebuild_projections(sqlite_settings, None, jobs=1)
    in_one = asyncio.run(every_row(sqlite_settings))

    rebuild_projections(sqlite_settings, None, jobs=2)

    assert asyncio.run(every_row(sqlite_settings)) == in_one
    assert len(in_one["read_orders"]) == 4

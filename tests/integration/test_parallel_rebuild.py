"""`saga projections rebuild --jobs 2`: the projections shared out to worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from typing import Any

from infra.bootstrap import bootstrap
from infra.parallel_rebuild import rebuild_projections, start_method
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


FORKING_REBUILD = """
import json, multiprocessing
from infra.parallel_rebuild import rebuild_projections
from infra.settings import Settings
asked, context = [], multiprocessing.get_context
multiprocessing.get_context = lambda method=None: (asked.append(method), context(method))[1]
rebuilt = rebuild_projections(Settings(_env_file=None), None, jobs=2)
print(json.dumps({"rebuilt": rebuilt, "start_methods": asked}))
"""


def test_a_rebuild_started_where_no_other_thread_runs_forks_its_workers_and_they_give_the_same_rows(
    store_settings: Settings,
) -> None:
    asyncio.run(saga_orders(store_settings))
    rebuild_projections(store_settings, None, jobs=1)
    in_one = asyncio.run(every_row(store_settings))
    unset = ("DATABASE_URL", "AMQP_URL", "DB_HOST", "RABBITMQ_URL", "RABBITMQ_HOST", "DATA_DIR")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    store = ({"DATABASE_URL": store_settings.database_url} if store_settings.database_url
             else {"DATA_DIR": str(store_settings.data_dir)})

    done = subprocess.run([sys.executable, "-c", FORKING_REBUILD], capture_output=True, text=True,
                          timeout=120, env={**environment, **store})

    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["start_methods"] == ["fork"]
    assert sorted(said["rebuilt"]) == sorted(p.name for p in all_projections())
    assert asyncio.run(every_row(store_settings)) == in_one


def test_workers_are_spawned_while_another_thread_runs() -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert start_method() == "spawn"
    finally:
        stop.set()
        other.join()

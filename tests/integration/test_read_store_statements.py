"""Reads from the PostgreSQL read store keep their statements prepared, and answer across a rebuild's swap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from infra.readstore.postgres import PostgresStore
from infra.settings import PostgresDsn, Settings


@pytest.fixture
def where(postgres_settings: Settings) -> PostgresDsn:
    assert postgres_settings.postgres is not None
    return postgres_settings.postgres


@pytest.fixture
async def store(where: PostgresDsn) -> AsyncIterator[PostgresStore]:
    """The read store with one connection in each pool."""
    store = await PostgresStore.connect(where, max_size=1)
    yield store
    await store.close()


async def swap_in(store: PostgresStore, columns: str, row: str) -> None:
    """As a rebuild does: a new table under another name, holding `row`, swapped in for `swapped`."""
    async with store.transaction() as tx:
        await tx.execute(f"CREATE TABLE swapped_new (id BIGINT PRIMARY KEY, {columns})")
        await tx.execute(f"INSERT INTO swapped_new VALUES ({row})")
        await tx.execute("DROP TABLE swapped")
        await tx.execute("ALTER TABLE swapped_new RENAME TO swapped")


async def test_a_read_prepared_before_a_swap_answers_from_the_table_swapped_in_whatever_its_shape(
    store: PostgresStore,
) -> None:
    async with store.transaction() as tx:
        await tx.execute("CREATE TABLE swapped (id BIGINT PRIMARY KEY, status TEXT)")
        await tx.execute("INSERT INTO swapped VALUES (1, 'PENDING')")
    query = "SELECT * FROM swapped WHERE id = $1"
    for _ in range(3):  # prepared once, then taken from the connection's cache
        assert [dict(r) for r in await store.fetch(query, 1)] == [{"id": 1, "status": "PENDING"}]

    # A rebuild: a new table under another name, swapped in (same shape: new rows only).
    await swap_in(store, "status TEXT", "1, 'COMPLETED'")
    assert [dict(r) for r in await store.fetch(query, 1)] == [{"id": 1, "status": "COMPLETED"}]

    # And one that reshapes it: the cached plan's row type no longer fits, and is prepared again.
    await swap_in(store, "status TEXT, reason TEXT", "1, 'CANCELLED', 'payment declined'")
    assert [dict(r) for r in await store.fetch(query, 1)] == [
        {"id": 1, "status": "CANCELLED", "reason": "payment declined"}]
    async with store.transaction() as tx:  # transactions prepare afresh: the swap never fails them
        assert [dict(r) for r in await tx.fetch(query, 1)] == [
            {"id": 1, "status": "CANCELLED", "reason": "payment declined"}]


async def test_a_connection_goes_back_to_its_pool_as_it_is_with_no_reset_query_after_it(
    store: PostgresStore, where: PostgresDsn,
) -> None:
    [read] = await store.fetch("SELECT pg_backend_pid() AS pid")
    async with store.transaction() as tx:
        [written] = await tx.fetch("SELECT pg_backend_pid() AS pid")

    # The server's record of each connection's last statement, seen from a connection of its own.
    watcher = await asyncpg.connect(**where.connect_args)
    try:
        last = {row["pid"]: row["query"] for row in await watcher.fetch(
            "SELECT pid, query FROM pg_stat_activity WHERE pid IN ($1, $2)", read["pid"], written["pid"],
        )}
    finally:
        await watcher.close()
    assert last[read["pid"]] == "SELECT pg_backend_pid() AS pid"  # a read is one round trip, not two
    assert last[written["pid"]] == "COMMIT;"  # asyncpg's own, ending the transaction

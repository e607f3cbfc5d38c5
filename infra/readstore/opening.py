"""The read store the settings choose.

PostgreSQL keeps the read tables in READ_DATABASE_URL's database and schema, by
default DATABASE_URL's, beside the event stores (asyncpg): the read side is a
context of its own, and may move to a server of its own. The embedded default
keeps them in `DATA_DIR/read.sqlite` (aiosqlite), or in memory with
`DATABASE_URL=memory://`.

The composition root hands it to the projectors it builds (`infra.bootstrap.projector`):

    Projector(system, store=read_store_opener(settings), bus=bus)
"""

from __future__ import annotations

from infra.settings import Settings
from projections.catalog import all_projections, migrate
from projections.runner import OpenStore
from projections.store import ReadStore


async def open_read_store(settings: Settings) -> ReadStore:
    """The read store the settings choose: PostgreSQL (READ_DATABASE_URL, else DATABASE_URL), or SQLite."""
    from infra.readstore.postgres import PostgresStore
    from infra.readstore.sqlite import SQLiteStore

    where = settings.read_database
    if where is not None:
        return await PostgresStore.connect(where)
    if settings.is_in_memory:
        return await SQLiteStore.connect(None)
    return await SQLiteStore.connect(settings.data_dir / "read.sqlite")


def read_store_opener(settings: Settings) -> OpenStore:
    """Opens the settings' read store when called, for a projector to own."""

    async def open_it() -> ReadStore:
        return await open_read_store(settings)

    return open_it


async def migrate_read_store(settings: Settings) -> list[str]:
    """`saga migrate`'s part for the read side: the tables of every projection."""
    store = await open_read_store(settings)
    try:
        await migrate(store)
    finally:
        await store.close()
    return [p.name for p in all_projections()]

"""The read store on PostgreSQL, through asyncpg, in the event store's database and schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg

from infra.eventstore.ddl import SERIALISE_DDL
from infra.settings import PostgresDsn
from projections.store import Dialect, Index, ReadStore, Reshaped, Row, TableSpec, Tx, json_text

STATEMENTS_KEPT = 100
"""Prepared statements a reading connection keeps (asyncpg's default)."""
POSTGRES = Dialect(
    "postgresql",
    {"uuid": "UUID", "money": "NUMERIC", "ts": "TIMESTAMPTZ", "json": "JSONB", "int": "BIGINT",
     "text": "TEXT"},
    " FOR UPDATE",
    "SELECT (e->>'{member}')::uuid FROM jsonb_array_elements({array}) e",
    "jsonb_object_agg({key}::text, {value})",
)


class PostgresStore(ReadStore):
    dialect = POSTGRES

    def __init__(self, pool: asyncpg.Pool, reads: asyncpg.Pool | None = None) -> None:
        self._pool = pool
        self._reads = reads or pool

    @classmethod
    async def connect(cls, where: PostgresDsn, *, max_size: int = 4) -> PostgresStore:
        """Two pools: transactions prepare every statement afresh; reads keep theirs prepared.

        A rebuild swaps tables under the same names. A plan cached for the old table fails
        the statement, and inside a transaction nothing can prepare it again, so the
        transactions' pool caches none. A read outside a transaction (`fetch`: every query
        of the API) is one statement: asyncpg prepares a plan the server refused again and
        runs it once more, so the reads' pool keeps them, saving a parse and a plan a query.

        A connection goes back to its pool as it is, with no reset query (`_as_it_is`).
        """
        settings = {"search_path": where.schema_name} if where.schema_name else {}

        async def pool(statement_cache_size: int) -> asyncpg.Pool:
            return await asyncpg.create_pool(
                **where.connect_args, min_size=1, max_size=max_size, server_settings=settings,
                statement_cache_size=statement_cache_size, reset=_as_it_is,
            )

        return cls(await pool(0), await pool(STATEMENTS_KEPT))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows = await self._reads.fetch(sql, *_pg_args(args))
        return cast(list[Row], rows)

    async def create(self, tables: Iterable[TableSpec], *, reshaped: Reshaped | None = None) -> None:
        # Replicas starting together would race on CREATE ... IF NOT EXISTS: one at a time.
        async with self.transaction() as tx:
            await tx.execute(SERIALISE_DDL)
            await self.create_in(tx, tables, reshaped)

    async def columns(self, tx: Tx, table: str) -> set[str]:
        rows = await tx.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1",
            table,
        )
        return {row["column_name"] for row in rows}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._pool.acquire() as connection, connection.transaction():
            yield _PostgresTx(connection)

    async def rename_index(self, tx: Tx, index: Index, table: TableSpec, to: TableSpec) -> None:
        await tx.execute(f"ALTER INDEX {table.name}_{index.suffix} RENAME TO {to.name}_{index.suffix}")

    async def close(self) -> None:
        await self._pool.close()
        if self._reads is not self._pool:
            await self._reads.close()


class _PostgresTx:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def execute(self, sql: str, *args: Any) -> None:
        await self._connection.execute(sql, *_pg_args(args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._connection.executemany(sql, [_pg_args(row) for row in rows])

    async def copy_in(self, table: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            json = [i for i, (_, role) in enumerate(table.columns) if role == "json"]
            records = [_json_as_text(row, json) for row in rows]
            await self._connection.copy_records_to_table(
                table.name, records=records, columns=list(table.column_names)
            )

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows = await self._connection.fetch(sql, *_pg_args(args))
        return cast(list[Row], rows)


async def _as_it_is(connection: asyncpg.Connection) -> None:
    """What a connection needs on its way back to the pool beyond asyncpg's own rollback of a transaction
    left open: nothing. asyncpg's default sends a reset query (unlock every advisory lock, close cursors,
    unlisten, reset settings), a round trip after every read; this store leaves none of those behind (its
    one lock, SERIALISE_DDL, ends with its transaction), so a read costs one round trip, not two."""


def _pg_args(args: Iterable[Any]) -> tuple[Any, ...]:
    # asyncpg takes JSONB as text.
    return tuple(json_text(a) if isinstance(a, (dict, list)) else a for a in args)


def _json_as_text(row: Sequence[Any], json: Sequence[int]) -> Sequence[Any]:
    # A rebuild copies in millions of values: only its JSON columns need encoding.
    if not json:
        return row
    encoded = list(row)
    for i in json:
        if isinstance(encoded[i], (dict, list)):
            encoded[i] = json_text(encoded[i])
    return encoded

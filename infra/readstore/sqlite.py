"""The read store on SQLite, through aiosqlite: `DATA_DIR/read.sqlite`, or in memory."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import aiosqlite

from projections.store import Dialect, Index, ReadStore, Row, TableSpec, Tx, json_text

# Money and timestamps as text, never REAL, so that amounts stay exact and times sort.
SQLITE = Dialect(
    "sqlite",
    {"uuid": "TEXT", "money": "TEXT", "ts": "TEXT", "json": "TEXT", "int": "INTEGER", "text": "TEXT"},
    "",
    "SELECT json_extract(e.value, '$.{member}') FROM json_each({array}) e",
    "json_group_object({key}, {value})",
)


class SQLiteStore(ReadStore):
    """One writer connection, and for a file a reader connection beside it (WAL: reads never wait).

    In memory there is a single connection, so a reader waits for the writer's
    transaction to end rather than see it half done.
    """

    dialect = SQLITE

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection | None) -> None:
        self._writer = writer
        self._reader = reader or writer
        self._write_lock = asyncio.Lock()
        self._read_lock = self._write_lock if reader is None else asyncio.Lock()

    @classmethod
    async def connect(cls, path: Path | None) -> SQLiteStore:
        if path is None:
            return cls(await _open(":memory:"), None)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await _open(str(path))
        await _run(writer, "PRAGMA journal_mode=WAL")
        return cls(writer, await _open(str(path)))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._read_lock:
            rows = await self._reader.execute_fetchall(_sqlite_sql(sql), _sqlite_args(args))
        return cast(list[Row], list(rows))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._write_lock:
            # IMMEDIATE takes the write lock at once: another process (a rebuild) waits, never deadlocks.
            await _run(self._writer, "BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(self._writer)
            except BaseException:
                await _run(self._writer, "ROLLBACK")
                raise
            await _run(self._writer, "COMMIT")

    async def columns(self, tx: Tx, table: str) -> set[str]:
        return {row["name"] for row in await tx.fetch("SELECT name FROM pragma_table_info($1)", table)}

    async def rename_index(self, tx: Tx, index: Index, table: TableSpec, to: TableSpec) -> None:
        # SQLite cannot rename an index: build it again under the new name.
        await tx.execute(f"DROP INDEX IF EXISTS {table.name}_{index.suffix}")
        await tx.execute(to.index_statement(index, to.name))

    async def close(self) -> None:
        await self._writer.close()
        if self._reader is not self._writer:
            await self._reader.close()


async def _open(database: str) -> aiosqlite.Connection:
    connection = await aiosqlite.connect(database, isolation_level=None)
    connection.row_factory = aiosqlite.Row
    await _run(connection, "PRAGMA busy_timeout = 30000")
    await _run(connection, "PRAGMA synchronous = NORMAL")
    return connection


async def _run(connection: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()) -> None:
    # Closing the cursor finishes the statement, so it holds no lock past this call.
    async with connection.execute(sql, args):
        pass


class _SQLiteTx:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, *args: Any) -> None:
        await _run(self._connection, _sqlite_sql(sql), _sqlite_args(args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._connection.executemany(_sqlite_sql(sql), [_sqlite_args(row) for row in rows])

    async def copy_in(self, table: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        await self.executemany(table.insert_statement(), rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        rows = await self._connection.execute_fetchall(_sqlite_sql(sql), _sqlite_args(args))
        return cast(list[Row], list(rows))


@lru_cache(maxsize=512)
def _sqlite_sql(sql: str) -> str:
    return re.sub(r"\$(\d+)", r"?\1", sql)


def _sqlite_args(args: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(_sqlite_value(a) for a in args)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return sortable_time(value)
    if isinstance(value, dict | list):
        return json_text(value)
    return value


def sortable_time(value: datetime) -> str:
    """A UTC time as fixed-width text, so that text order is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")

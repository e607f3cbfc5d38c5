"""The read store's interface: tables, rows and transactions, with no driver behind them.

Projections and queries write their SQL once, in the subset PostgreSQL and
SQLite share: `$1`-style placeholders, `INSERT ... ON CONFLICT ... DO UPDATE`,
and column types named by role (`{uuid}`, `{money}`, `{ts}`, `{json}`, `{int}`)
that each store's `Dialect` spells its own way. Values go in as Python objects
(UUID, Decimal, aware datetime); a store may keep them as text, in forms that
sort as the values do, and the `as_*` helpers read either form back.

The stores themselves (asyncpg, aiosqlite) live in `infra`, which opens the one
the settings choose and hands it to the projector.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

import orjson

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Dialect:
    """How one database spells the column roles (each store in `infra` has one)."""

    name: str
    types: Mapping[str, str]
    for_update: str  # locks the rows a transaction reads, where the database needs to be told
    json_uuids: str
    """A `SELECT` of one member (`{member}`) of each element of a JSON array (`{array}`), as a uuid."""
    json_object: str
    """An aggregate making one JSON object of `{key}` (a uuid) and `{value}`; NULL or `{}` of no rows."""

    def ddl(self, statement: str) -> str:
        return statement.format_map(self.types)


@dataclass(frozen=True)
class Index:
    suffix: str
    columns: str


@dataclass(frozen=True)
class TableSpec:
    """A read table: its columns (with role types), primary key and indexes.

    Index names derive from the table name, so a table built under another name
    (a rebuild) carries indexes of its own until it is swapped in.
    """

    name: str
    columns: tuple[tuple[str, str], ...]
    primary_key: tuple[str, ...]
    indexes: tuple[Index, ...] = ()

    def renamed(self, name: str) -> TableSpec:
        return TableSpec(name, self.columns, self.primary_key, self.indexes)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def create_statements(self, dialect: Dialect) -> list[str]:
        columns = ", ".join(f"{name} {{{role}}}" for name, role in self.columns)
        key = ", ".join(self.primary_key)
        statements = [dialect.ddl(f"CREATE TABLE IF NOT EXISTS {self.name} ({columns}, PRIMARY KEY ({key}))")]
        statements += [self.index_statement(index, self.name) for index in self.indexes]
        return statements

    def index_statement(self, index: Index, table: str) -> str:
        return f"CREATE INDEX IF NOT EXISTS {table}_{index.suffix} ON {table} ({index.columns})"

    def insert_statement(self) -> str:
        names = self.column_names
        placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        return f"INSERT INTO {self.name} ({', '.join(names)}) VALUES ({placeholders})"

    def upsert_statement(self) -> str:
        names = self.column_names
        placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in self.primary_key)
        return (
            f"INSERT INTO {self.name} ({', '.join(names)}) VALUES ({placeholders}) "
            f"ON CONFLICT ({', '.join(self.primary_key)}) DO UPDATE SET {updates}"
        )


class Tx(Protocol):
    """The statements of one read-store transaction."""

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def copy_in(self, table: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows whose keys the table does not hold yet (one there fails the transaction).

        PostgreSQL copies them in, several times faster than upserts; SQLite inserts them.
        """
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...


Reshaped = Callable[[Tx, TableSpec], Awaitable[None]]
"""Told, inside the transaction, of a table dropped and created anew because its columns changed."""


class ReadStore(ABC):
    """A read database; one instance per process, shared by the projector and the queries."""

    dialect: Dialect

    @abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Rows of one query, outside any write transaction."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """`async with store.transaction() as tx:` commits on exit, rolls back on an error."""

    @abstractmethod
    async def close(self) -> None: ...

    async def create(self, tables: Iterable[TableSpec], *, reshaped: Reshaped | None = None) -> None:
        """Create the tables that do not exist yet, in one transaction.

        With `reshaped`, a table whose columns are not those of its spec (the
        table of an earlier version) is dropped and created anew, and `reshaped`
        is called in the same transaction: its rows must then be made again.
        """
        async with self.transaction() as tx:
            await self.create_in(tx, tables, reshaped)

    async def create_in(self, tx: Tx, tables: Iterable[TableSpec], reshaped: Reshaped | None) -> None:
        for table in tables:
            if reshaped is not None:
                found = await self.columns(tx, table.name)
                if found and found != set(table.column_names):
                    await tx.execute(f"DROP TABLE {table.name}")
                    await reshaped(tx, table)
            for statement in table.create_statements(self.dialect):
                await tx.execute(statement)

    @abstractmethod
    async def columns(self, tx: Tx, table: str) -> set[str]:
        """The names of the columns `table` has in the database; empty if there is no such table."""

    async def swap(self, tx: Tx, live: TableSpec, rebuilt: TableSpec) -> None:
        """Put `rebuilt` in the place of `live` inside `tx`: readers see one or the other, whole."""
        await tx.execute(f"DROP TABLE IF EXISTS {live.name}")
        await tx.execute(f"ALTER TABLE {rebuilt.name} RENAME TO {live.name}")
        for index in live.indexes:
            await self.rename_index(tx, index, rebuilt, live)

    @abstractmethod
    async def rename_index(self, tx: Tx, index: Index, table: TableSpec, to: TableSpec) -> None:
        """Give a renamed table's index the name it has under the table's new name."""


def as_uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def as_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def as_time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def as_optional_time(value: Any) -> datetime | None:
    return None if value is None else as_time(value)


def as_json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def json_text(value: Any) -> str:
    """A JSON column's value as text: lists and dicts of JSON values, rows (frozen dataclasses, their
    fields in order), UUIDs, aware datetimes (ISO 8601) and Decimals (as strings, exact)."""
    return orjson.dumps(value, default=_beyond_orjson).decode()


def _beyond_orjson(value: Any) -> Any:
    if isinstance(value, Decimal | UUID):  # a Decimal keeps its digits; a driver's UUID class, its text
        return str(value)
    raise TypeError  # orjson names the type in the error it raises


def placeholders(start: int, count: int) -> str:
    """`$start, $start+1, ...` for an IN list of `count` values."""
    return ", ".join(f"${i}" for i in range(start, start + count))


async def fetch_in(store: ReadStore, statement: str, ids: Sequence[Any], chunk: int = 500) -> list[Row]:
    """Rows of `statement`, whose `{ids}` stands for an IN list of `ids`, asked for in chunks."""
    rows: list[Row] = []
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        rows += await store.fetch(statement.format(ids=placeholders(1, len(part))), *part)
    return rows

"""Where the customers' data keys are kept: a table apart from the events, on each store.

`personal_data_keys (subject, stored, created_at)`: in the event store's database and
schema on PostgreSQL (created under the DDL lock, reached through a small pool of its
own), in `keys.sqlite` beside the embedded stores, or in memory. A key is stored as
`infra.eventstore.privacy` hands it over, wrapped when a master secret is configured.
Creating keys and reading them take one round trip for a whole batch of customers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import psycopg
import stamina
from psycopg import sql
from psycopg_pool import ConnectionPool

from infra.eventstore.ddl import SERIALISE_DDL
from infra.settings import PostgresDsn


class KeyTable(Protocol):
    """Where the data keys are kept, as stored (wrapped when there is a master key)."""

    def get(self, subject: UUID) -> bytes | None: ...

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        """The keys kept for these subjects (those with none are left out), in one round trip."""
        ...

    def add_many(self, new: Mapping[UUID, bytes]) -> dict[UUID, bytes]:
        """Keep each subject's new key unless one is kept already, all at once; the keys kept, by subject."""
        ...

    def delete(self, subject: UUID) -> bool:
        """Delete the subject's key; whether there was one."""
        ...

    def close(self) -> None: ...


class MemoryKeyTable:
    """The keys of an in-memory store (`DATABASE_URL=memory://`)."""

    def __init__(self) -> None:
        self._keys: dict[UUID, bytes] = {}
        self._lock = threading.Lock()

    def get(self, subject: UUID) -> bytes | None:
        return self._keys.get(subject)

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        return {subject: self._keys[subject] for subject in subjects if subject in self._keys}

    def add_many(self, new: Mapping[UUID, bytes]) -> dict[UUID, bytes]:
        with self._lock:
            return {subject: self._keys.setdefault(subject, stored) for subject, stored in new.items()}

    def delete(self, subject: UUID) -> bool:
        with self._lock:
            return self._keys.pop(subject, None) is not None

    def close(self) -> None:
        pass


class SQLiteKeyTable:
    """The keys of the embedded default, in `keys.sqlite` beside the event stores (one connection, locked)."""

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS personal_data_keys ("
                " subject TEXT PRIMARY KEY, stored BLOB NOT NULL,"
                " created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )

    def get(self, subject: UUID) -> bytes | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT stored FROM personal_data_keys WHERE subject = ?", (str(subject),)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        with self._lock:
            return self._select(subjects)

    def add_many(self, new: Mapping[UUID, bytes]) -> dict[UUID, bytes]:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany(
                    "INSERT OR IGNORE INTO personal_data_keys (subject, stored) VALUES (?, ?)",
                    [(str(subject), stored) for subject, stored in new.items()],
                )
                kept = self._select(list(new))
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
        return kept

    def _select(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        kept: dict[UUID, bytes] = {}
        for start in range(0, len(subjects), 500):
            chunk = [str(subject) for subject in subjects[start : start + 500]]
            marks = ", ".join("?" * len(chunk))
            rows = self._connection.execute(
                f"SELECT subject, stored FROM personal_data_keys WHERE subject IN ({marks})", chunk,
            ).fetchall()
            kept.update((UUID(subject), bytes(stored)) for subject, stored in rows)
        return kept

    def delete(self, subject: UUID) -> bool:
        with self._lock:
            deleted = self._connection.execute(
                "DELETE FROM personal_data_keys WHERE subject = ?", (str(subject),)
            ).rowcount
        return bool(deleted)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class PostgresKeyTable:
    """The keys on PostgreSQL: a table of the event store's database and schema, apart from its events."""

    def __init__(self, where: PostgresDsn, *, create: bool = True, max_connections: int = 2) -> None:
        name = sql.Identifier("personal_data_keys")
        schema = where.schema_name
        self._table = sql.SQL(".").join([sql.Identifier(schema), name]) if schema else name
        # Keys are cached, so a process asks for one now and then: a connection or two serve all its threads.
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            where.url, min_size=1, max_size=max_connections, open=True, name="personal data keys",
            kwargs={"autocommit": True, "connect_timeout": 10, "application_name": "saga personal data keys"},
            check=ConnectionPool.check_connection,
        )
        if create:
            with self._pool.connection() as connection, connection.transaction():
                connection.execute(SERIALISE_DDL)  # processes starting together create it one at a time
                connection.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (subject uuid PRIMARY KEY, stored bytea NOT NULL,"
                    " created_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._table))

    def close(self) -> None:
        self._pool.close()

    # Every statement here may run twice: reading, inserting what is missing, deleting.
    # The pool checks a connection as it lends it; one the server ends mid-statement is
    # thrown away, and the statement runs again on another.
    @stamina.retry(on=psycopg.OperationalError, attempts=4, timeout=15.0, wait_initial=0.05, wait_max=2.0)
    def _execute(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as connection:
            cursor = connection.execute(sql.SQL(query).format(table=self._table), params)
            return cursor.fetchall() if cursor.description else [(cursor.rowcount,)]

    def get(self, subject: UUID) -> bytes | None:
        rows = self._execute("SELECT stored FROM {table} WHERE subject = %s", (subject,))
        return bytes(rows[0][0]) if rows else None

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        rows = self._execute("SELECT subject, stored FROM {table} WHERE subject = ANY(%s::uuid[])",
                             (list(subjects),))
        return {subject: bytes(stored) for subject, stored in rows}

    def add_many(self, new: Mapping[UUID, bytes]) -> dict[UUID, bytes]:
        # One round trip: the rows this inserts, and those rivals inserted first.
        subjects, keys = list(new), list(new.values())
        rows = self._execute(
            "WITH added AS (INSERT INTO {table} (subject, stored)"
            " SELECT * FROM unnest(%s::uuid[], %s::bytea[]) ON CONFLICT (subject) DO NOTHING"
            " RETURNING subject, stored)"
            " SELECT subject, stored FROM added UNION ALL"
            " SELECT subject, stored FROM {table} WHERE subject = ANY(%s::uuid[])",
            (subjects, keys, subjects),
        )
        return {subject: bytes(stored) for subject, stored in rows}

    def delete(self, subject: UUID) -> bool:
        [(deleted,)] = self._execute("DELETE FROM {table} WHERE subject = %s", (subject,))
        return bool(deleted)

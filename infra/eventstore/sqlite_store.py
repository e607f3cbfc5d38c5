"""The embedded store: the library's SQLite persistence, its connections keeping their prepared statements.

The library opens each SQLite connection with `cached_statements=True`, which the
`sqlite3` module reads as a cache of one statement; a save runs several (the keys, the
events, the tracking rows, the hashes), so each was parsed and planned again on every
save, tens of microseconds apiece. These connections keep `STATEMENTS_KEPT`.
"""

from __future__ import annotations

import sqlite3

from eventsourcing.persistence import InterfaceError
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteFactory,
)
from eventsourcing.utils import Environment, EnvType

from infra.eventstore.recorders import SQLiteExactlyOnceRecorder

STATEMENTS_KEPT = 64


class StatementKeepingPool(SQLiteConnectionPool):
    """The library's pool of SQLite connections, each with a cache of `STATEMENTS_KEPT` statements."""

    def _create_connection(self) -> SQLiteConnection:
        try:
            connection = sqlite3.connect(
                database=self.db_name, uri=True, check_same_thread=False, isolation_level=None,
                cached_statements=STATEMENTS_KEPT,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        if not self.is_sqlite_memory_mode and not self.is_journal_mode_wal:
            if connection.execute("PRAGMA journal_mode;").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL;")
                self.journal_mode_was_changed_to_wal = True
            self.is_journal_mode_wal = True
        connection.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=connection, max_age=self.max_age)


class SQLiteExactlyOnceFactory(SQLiteFactory):
    """The library's SQLite store, with exact multi-row tracking, hash chains, and kept statements."""

    process_recorder_class = SQLiteExactlyOnceRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        self.datastore.pool = StatementKeepingPool(
            db_name=pool.db_name, lock_timeout=pool.lock_timeout, pool_size=pool.pool_size,
            max_overflow=pool.max_overflow, pool_timeout=pool.pool_timeout, max_age=pool.max_age,
            pre_ping=pool.pre_ping,
        )

"""Where the customers' data keys are kept: a table in each event store, beside its events.

`personal_data_keys (subject, stored, created_at)` lives in the database of the events
its keys seal, apart from the event tables: in the event store's schema on PostgreSQL
(one table for the applications that share it), in each application's own file on the
embedded default, in memory for `memory://`. A key is stored as
`infra.eventstore.privacy` hands it over, wrapped when a master secret is configured.

A new key is inserted by the transaction that writes the first events it seals
(`insert_new`, queued with the events' own statements: no round trip and no commit
more), and a key kept already for the person makes that insert, and so the save,
fail. A key that was at hand is checked by the transaction that writes the events it
sealed (`check_kept`): gone (forgotten) or another, and the save fails (on PostgreSQL the
queued check inserts the person with no key, which the table refuses; on SQLite a SELECT
in the write transaction raises). So no save commits data sealed with a key the table
does not hold. Reading keys takes one round trip for a whole
batch of customers.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import IntegrityError, InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import retry
from psycopg import Cursor, sql
from psycopg.rows import DictRow

from infra.eventstore.sealing import kept_keys, new_keys
from infra.eventstore.statements import Rendered, kept_cursor

TABLE = "personal_data_keys"
SQLITE_SUBJECTS = 500  # per SELECT: within SQLite's oldest limit of 999 parameters


class KeyTable(Protocol):
    """Where the data keys are kept, as stored (wrapped when there is a master key)."""

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        """The keys kept for these subjects (those with none are left out), in one round trip."""
        ...

    def delete(self, subject: UUID) -> bool:
        """Delete the subject's key; whether there was one."""
        ...


class MemoryKeyTable:
    """The keys of an in-memory store (`DATABASE_URL=memory://`); its recorder keeps them under its lock."""

    def __init__(self) -> None:
        self._keys: dict[UUID, bytes] = {}
        self._lock = threading.Lock()

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        with self._lock:
            return {subject: self._keys[subject] for subject in subjects if subject in self._keys}

    def keep(self, stored_events: Sequence[StoredEvent]) -> None:
        """In the events' transaction: insert the keys made for them, and check those that were at hand."""
        if new := new_keys(stored_events):
            self.insert_new(new)
        if kept := kept_keys(stored_events):
            self.check_kept(kept)

    def insert_new(self, new: Mapping[UUID, bytes]) -> None:
        with self._lock:
            if kept := self._keys.keys() & new.keys():
                raise IntegrityError(f"a key is kept already for {len(kept)} of the persons")
            self._keys.update(new)

    def check_kept(self, kept: Mapping[UUID, bytes]) -> None:
        with self._lock:
            if gone := [subject for subject, stored in kept.items() if self._keys.get(subject) != stored]:
                raise IntegrityError(f"the key sealed with is no longer kept for {len(gone)} of the persons")

    def delete(self, subject: UUID) -> bool:
        with self._lock:
            return self._keys.pop(subject, None) is not None


class SQLiteKeyTable:
    """The keys in an application's own SQLite file, written under the lock its events are written under."""

    create_statement = (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (subject TEXT PRIMARY KEY, stored BLOB NOT NULL,"
        " created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP) WITHOUT ROWID"
    )

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        with self.datastore.transaction(commit=False) as c:
            return _sqlite_select(c, subjects)

    def keep(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent]) -> None:
        """In the events' transaction: insert the keys made for them, and check those that were at hand."""
        if new := new_keys(stored_events):
            self.insert_new(c, new)
        if kept := kept_keys(stored_events):
            self.check_kept(c, kept)

    def insert_new(self, c: SQLiteCursor, new: Mapping[UUID, bytes]) -> None:
        """Inside the events' transaction; a key kept already for the person fails it."""
        c.executemany(f"INSERT INTO {TABLE} (subject, stored) VALUES (?, ?)",
                      [(str(subject), stored) for subject, stored in new.items()])

    def check_kept(self, c: SQLiteCursor, kept: Mapping[UUID, bytes]) -> None:
        """Inside the events' transaction, which an exception rolls back: a key no longer kept fails it."""
        for subject, stored in kept.items():
            c.execute(f"SELECT stored FROM {TABLE} WHERE subject = ?", (str(subject),))
            row = c.fetchone()
            if row is None or row[0] != stored:
                raise IntegrityError(f"the key sealed with is no longer kept for {subject}")

    def delete(self, subject: UUID) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute("PRAGMA secure_delete = ON")  # the key's bytes are overwritten, not left in a free page
            c.execute(f"DELETE FROM {TABLE} WHERE subject = ?", (str(subject),))
            deleted = c.sqlite_cursor.rowcount
        return bool(deleted)


def _sqlite_select(c: SQLiteCursor, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
    kept: dict[UUID, bytes] = {}
    for start in range(0, len(subjects), SQLITE_SUBJECTS):
        chunk = [str(subject) for subject in subjects[start : start + SQLITE_SUBJECTS]]
        marks = ", ".join("?" * len(chunk))
        c.execute(f"SELECT subject, stored FROM {TABLE} WHERE subject IN ({marks})", chunk)
        kept.update((UUID(subject), bytes(stored)) for subject, stored in c.fetchall())
    return kept


class PostgresKeyTable:
    """The keys in the event store's schema on PostgreSQL, reached through the application's own pool."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        name = sql.SQL(".").join([sql.Identifier(datastore.schema), sql.Identifier(TABLE)]) \
            if datastore.schema else sql.Identifier(TABLE)
        self.name = name
        self.create_statement = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (subject uuid PRIMARY KEY, stored bytea NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        ).format(name)
        # Lists bind in binary (%b): as text, psycopg escapes each bytea with a regular expression.
        self._select = Rendered(
            sql.SQL("SELECT subject, stored FROM {} WHERE subject = ANY(%b::uuid[])").format(name))
        self._insert = Rendered(sql.SQL(
            "INSERT INTO {} (subject, stored) SELECT * FROM unnest(%b::uuid[], %b::bytea[])"
        ).format(name))
        self._insert_one = Rendered(sql.SQL("INSERT INTO {} (subject, stored) VALUES (%s, %s)").format(name))
        # A key no longer kept (or another) inserts its person with no key: a NOT NULL violation.
        self._check = Rendered(sql.SQL(
            "INSERT INTO {0} (subject, stored) SELECT k.subject, NULL::bytea"
            " FROM unnest(%b::uuid[], %b::bytea[]) AS k(subject, stored)"
            " WHERE NOT EXISTS (SELECT 1 FROM {0} t WHERE t.subject = k.subject AND t.stored = k.stored)"
        ).format(name))
        self._check_one = Rendered(sql.SQL(
            "INSERT INTO {0} (subject, stored) SELECT %s, NULL::bytea"
            " WHERE NOT EXISTS (SELECT 1 FROM {0} WHERE subject = %s AND stored = %s)"
        ).format(name))
        self._delete = Rendered(sql.SQL("DELETE FROM {} WHERE subject = %s").format(name))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        # The pool's connections commit each statement: one round trip, not three.
        with self.datastore.get_connection() as connection:
            c = kept_cursor(connection)
            c.execute(self._select, (list(subjects),), prepare=True)
            return {subject: bytes(stored) for subject, stored in c.fetchall()}

    def keep(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]) -> None:
        """In the events' transaction: insert the keys made for them, and check those that were at hand."""
        if new := new_keys(stored_events):
            self.insert_new(curs, new)
        if kept := kept_keys(stored_events):
            self.check_kept(curs, kept)

    def insert_new(self, curs: Cursor[DictRow], new: Mapping[UUID, bytes]) -> None:
        """Queue the insert in the events' transaction; a key kept already for the person fails it."""
        if len(new) == 1:  # most saves: one customer, bound as two values rather than two lists
            curs.execute(self._insert_one, next(iter(new.items())), prepare=True)
        else:
            curs.execute(self._insert, (list(new), list(new.values())), prepare=True)

    def check_kept(self, curs: Cursor[DictRow], kept: Mapping[UUID, bytes]) -> None:
        """Queue the check in the events' transaction; a key no longer kept fails it."""
        if len(kept) == 1:
            subject, stored = next(iter(kept.items()))
            curs.execute(self._check_one, (subject, subject, stored), prepare=True)
        else:
            curs.execute(self._check, (list(kept), list(kept.values())), prepare=True)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def delete(self, subject: UUID) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._delete, (subject,))
            return bool(curs.rowcount)

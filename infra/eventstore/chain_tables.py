"""Where each event's hash is kept: a table beside each application's events, on every store.

On PostgreSQL `<events table>_hashes (originator_id, originator_version, hash)`, its primary
key the first two; on SQLite `stored_events_chain`, keyed by the event's notification id
(`sqlite_chain.SQLiteHashes`). It is created with the application's other tables and written in the
transaction that writes the events: one SELECT of the hashes the batch chains from (none when every stream
of the batch is new, or, on PostgreSQL, when this process committed them: `committed_heads`)
and one multi-row INSERT per save. On PostgreSQL the SELECT comes before the events table's
lock, so the lock is not held over its round trip: the version a save builds on was committed
(with its hash) before the save loaded it, and the primary key refuses a rival writer of the
same version. On SQLite it comes after the events' insert, which has taken the database's
write lock.

A hash row that is already there (left by hand where its event was deleted) is kept as it
is, and stands for its version: the write goes on, and verification reports the stream's
link at that version as broken.

Verification reads every version of a stream, event or hash or both (`Link`), in one
snapshot of the store, streams in id order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor, sql
from psycopg.rows import DictRow, tuple_row

from infra.eventstore.chain import Link, StreamReport, chain, check_stream, needed
from infra.eventstore.committed_heads import CommittedHeads
from infra.eventstore.statements import Rendered, kept_cursor

ROWS_AS_VALUES = 32
HashRow = tuple[UUID, int, bytes]
READ_BATCH = 5_000


class NoChainTableError(Exception):
    """The store has no hash table: it was made before chaining, and `saga migrate` has not run since."""

    def __init__(self, table: str, application: str = "") -> None:
        super().__init__(f"no table {table}")
        self.table, self.application = table, application


class ChainSnapshot(NamedTuple):
    chain_start: int | None
    """The lowest notification id of an event with a hash: where chaining began."""
    links: Iterator[Link]


class PostgresHashes:
    """The hash table of one PostgreSQL events table."""

    def __init__(self, datastore: PostgresDatastore, events_table: str) -> None:
        self.datastore = datastore
        self.heads = CommittedHeads()
        schema = sql.Identifier(datastore.schema)
        table = f"{events_table}_hashes"
        if len(table) > 63:
            raise ValueError(f"identifier too long: {table}")
        names = {"schema": schema, "events": sql.Identifier(events_table), "hashes": sql.Identifier(table),
                 "id_type": sql.SQL(datastore.originator_id_type)}
        self.create_statement = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{hashes} (originator_id {id_type} NOT NULL, "
            "originator_version bigint NOT NULL, hash bytea NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version))").format(**names)
        # Lists bind in binary (%b): as text, psycopg escapes each bytea with a regular expression.
        self._previous = Rendered(sql.SQL(
            "SELECT h.originator_id, h.originator_version, h.hash FROM {schema}.{hashes} h "
            "JOIN unnest(%b::{id_type}[], %b::bigint[]) AS k(id, v) "
            "ON h.originator_id = k.id AND h.originator_version = k.v").format(**names))
        self._insert = Rendered(sql.SQL(
            "INSERT INTO {schema}.{hashes} (originator_id, originator_version, hash) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::bytea[]) "
            "ON CONFLICT DO NOTHING").format(**names))
        self._start = sql.SQL(
            "SELECT e.notification_id FROM {schema}.{events} e JOIN {schema}.{hashes} h "
            "ON h.originator_id = e.originator_id AND h.originator_version = e.originator_version "
            "ORDER BY e.notification_id LIMIT 1").format(**names)
        self._events = sql.SQL(
            "SELECT originator_id, originator_version, topic, state, notification_id FROM {schema}.{events} "
            "{where} ORDER BY originator_id, originator_version")
        self._hashes = sql.SQL(
            "SELECT originator_id, originator_version, hash FROM {schema}.{hashes} "
            "{where} ORDER BY originator_id, originator_version")
        self._names = names
        self._qualified = sql.SQL("{schema}.{hashes}").format(**names).as_string(None)

    def chained(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]) -> list[HashRow]:
        """The batch's hashes, as the rows `insert` writes; reads the hashes it chains from."""
        stored, keys = self.heads.known(needed(stored_events))
        if keys:
            reading = kept_cursor(curs.connection)
            reading.execute(*self._reading(keys), prepare=True, binary=True)
            stored.update({(row[0], row[1]): bytes(row[2]) for row in reading.fetchall()})
        rows = chain(stored_events, stored)
        self.heads.hold(rows)
        return rows

    def insert(self, curs: Cursor[DictRow], rows: list[HashRow]) -> None:
        with curs.connection.cursor() as writing:
            writing.execute(*self._writing(rows), prepare=True)

    # A few rows bind a parameter a value: a list binds in Python, one value at a time.
    def _reading(self, keys: list[tuple[UUID, int]]) -> tuple[sql.Composed, list[Any]]:
        if len(keys) > ROWS_AS_VALUES:
            return self._previous, [[k[0] for k in keys], [k[1] for k in keys]]
        return self._previous_values(len(keys)), [value for key in keys for value in key]

    def _writing(self, rows: list[HashRow]) -> tuple[sql.Composed, list[Any]]:
        if len(rows) > ROWS_AS_VALUES:
            return self._insert, [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]]
        return self._insert_values(len(rows)), [value for row in rows for value in row]

    @functools.lru_cache(maxsize=ROWS_AS_VALUES)  # noqa: B019 (one per recorder, for its life)
    def _insert_values(self, n: int) -> sql.Composed:
        return Rendered(sql.SQL(
            "INSERT INTO {schema}.{hashes} (originator_id, originator_version, hash) VALUES {rows} "
            "ON CONFLICT DO NOTHING").format(**self._names, rows=sql.SQL(", ".join(["(%s, %s, %s)"] * n))))

    @functools.lru_cache(maxsize=ROWS_AS_VALUES)  # noqa: B019
    def _previous_values(self, n: int) -> sql.Composed:
        return Rendered(sql.SQL(
            "SELECT originator_id, originator_version, hash FROM {schema}.{hashes} "
            "WHERE (originator_id, originator_version) IN ({rows})").format(
                **self._names, rows=sql.SQL(", ".join(["(%s, %s)"] * n))))

    @contextmanager
    def snapshot(self, stream_id: UUID | None = None) -> Iterator[ChainSnapshot]:
        """Every link (or one stream's), and where chaining began, as of one moment."""
        where = sql.SQL("WHERE originator_id = %s" if stream_id is not None else "")
        params = [stream_id] if stream_id is not None else []
        with self.datastore.get_connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if conn.execute("SELECT to_regclass(%s)", (self._qualified,)).fetchone() == {"to_regclass": None}:
                raise NoChainTableError(self._qualified)
            start = conn.cursor(row_factory=tuple_row).execute(self._start).fetchone()
            # Two scans in key order (each its primary key's), merged here: a join sorted by the
            # server would sort every state.
            # Rows in binary: a state's and a hash's bytes as they are, not spelt out in hex.
            with conn.cursor(name="chain_events", row_factory=tuple_row, binary=True) as events, \
                    conn.cursor(name="chain_hashes", row_factory=tuple_row, binary=True) as hashes:
                events.itersize = hashes.itersize = READ_BATCH
                events.execute(self._events.format(**self._names, where=where), params)
                hashes.execute(self._hashes.format(**self._names, where=where), params)
                yield ChainSnapshot(None if start is None else start[0], merged(
                    ((*row[:3], None if row[3] is None else bytes(row[3]), row[4]) for row in events),
                    ((row[0], row[1], bytes(row[2])) for row in hashes), _same))


def _same(stream_id: UUID) -> UUID:
    return stream_id


def merged(events: Iterator[Any], hashes: Iterator[Any], to_uuid: Callable[[Any], UUID]) -> Iterator[Link]:
    """Events and hash rows, both in (id, version) order, as one link per version.

    `to_uuid` makes a UUID of a stored id; ids are compared as stored, in the store's order.
    """
    last: dict[Any, UUID] = {}

    def stream(stored: Any) -> UUID:  # a stream's rows come one after another: convert each id once
        found = last.get(stored)
        if found is None:
            last.clear()
            found = last[stored] = to_uuid(stored)
        return found

    event, digest = next(events, None), next(hashes, None)
    while event is not None or digest is not None:
        event_key = None if event is None else (event[0], event[1])
        hash_key = None if digest is None else (digest[0], digest[1])
        if hash_key is None or (event_key is not None and event_key < hash_key):
            assert event is not None
            yield Link(stream(event[0]), event[1], event[2], event[3], event[4], None)
            event = next(events, None)
        elif event_key is None or hash_key < event_key:
            assert digest is not None
            yield Link(stream(digest[0]), digest[1], None, None, None, digest[2])
            digest = next(hashes, None)
        else:
            assert event is not None and digest is not None
            yield Link(stream(event[0]), event[1], event[2], event[3], event[4], digest[2])
            event, digest = next(events, None), next(hashes, None)


class ChainedStore:
    """What a recorder that chains its events offers its readers: its links, and one stream checked."""

    def chain_snapshot(self, stream_id: UUID | None = None) -> AbstractContextManager[ChainSnapshot]:
        raise NotImplementedError

    def verify_stream(self, stream_id: UUID) -> StreamReport | None:
        """The stream's chain checked; None when the store holds neither an event nor a hash of it."""
        with self.chain_snapshot(stream_id) as snapshot:
            links, chain_start = list(snapshot.links), snapshot.chain_start
        return check_stream(stream_id, links, chain_start) if links else None

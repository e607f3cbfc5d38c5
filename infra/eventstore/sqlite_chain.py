"""The embedded store's hash table: each event's hash in a row keyed by the event's notification id.

What the hashes are and how they are written and read is said in `chain_tables`; this is
where SQLite keeps them.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore

from infra.eventstore.chain import Link, chain, needed
from infra.eventstore.chain_tables import ChainSnapshot, NoChainTableError

SQLITE_PAIRS = 400  # (id, version) pairs per SELECT: within SQLite's oldest limit of 999 parameters


class SQLiteHashes:
    """The hash table beside SQLite's `stored_events` (one database file per application).

    Its rows are keyed by their event's notification id (the events table's rowid), so a save
    appends them at the end of the table rather than into the middle of an index by stream: a
    second random-key index cost as much again as the events' own on every batch. The stream
    and version are kept in the row, so a hash left where its event was deleted names them. A
    store chained before this form has its rows moved into it by `upgrade` (any whose event
    is gone under negative numbers).
    """

    events_table = "stored_events"
    table = "stored_events_chain"
    create_statement = (
        f"CREATE TABLE IF NOT EXISTS {table} (notification_id INTEGER PRIMARY KEY, originator_id TEXT"
        " NOT NULL, originator_version INTEGER NOT NULL, hash BLOB NOT NULL)"
    )
    _former = "stored_events_hashes"
    upgrade = [
        f"CREATE TABLE IF NOT EXISTS {_former} (originator_id TEXT NOT NULL, originator_version INTEGER"
        " NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID",
        f"INSERT OR IGNORE INTO {table} SELECT e.rowid, h.originator_id, h.originator_version, h.hash"
        f" FROM {_former} h JOIN {events_table} e"
        " ON e.originator_id = h.originator_id AND e.originator_version = h.originator_version",
        f"INSERT INTO {table} SELECT -ROW_NUMBER() OVER () - coalesce((SELECT -min(notification_id)"
        f" FROM {table} WHERE notification_id < 0), 0), h.originator_id, h.originator_version, h.hash"
        f" FROM {_former} h WHERE NOT EXISTS (SELECT 1 FROM {events_table} e"
        " WHERE e.originator_id = h.originator_id AND e.originator_version = h.originator_version)",
        f"DROP TABLE {_former}",
    ]
    _insert = f"INSERT OR IGNORE INTO {table} VALUES (?, ?, ?, ?)"
    _matching = "h.notification_id = e.rowid AND h.originator_id = e.originator_id " \
        "AND h.originator_version = e.originator_version"

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    def write(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], notification_ids: Sequence[int]
    ) -> None:
        """Chain the batch, whose events `c`'s transaction has just inserted, and store its hashes."""
        keys = needed(stored_events)
        stored: dict[tuple[UUID, int], bytes] = {}
        for start in range(0, len(keys), SQLITE_PAIRS):
            part = keys[start:start + SQLITE_PAIRS]
            pairs = ", ".join("(?, ?)" for _ in part)
            c.execute(f"SELECT e.originator_id, e.originator_version, h.hash FROM {self.events_table} e "
                      f"JOIN {self.table} h ON {self._matching} "
                      f"WHERE (e.originator_id, e.originator_version) IN (VALUES {pairs})",
                      [value for k in part for value in (k[0].hex, k[1])])
            stored.update({(UUID(row[0]), row[1]): row[2] for row in c.fetchall()})
        c.executemany(self._insert, [
            (notification_id, stream_id.hex, version, digest)
            for notification_id, (stream_id, version, digest) in zip(
                notification_ids, chain(stored_events, stored), strict=True)
        ])

    @contextmanager
    def snapshot(self, stream_id: UUID | None = None) -> Iterator[ChainSnapshot]:
        params = [stream_id.hex] if stream_id is not None else []
        # One stream's hashes left without their event lie at or after its first event's number:
        # one before it, and the stream lacks its first versions, which is found without it.
        one_stream = f"originator_id = ? AND notification_id >= coalesce((SELECT min(rowid) FROM " \
            f"{self.events_table} WHERE originator_id = ?), 0) AND" if params else ""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.table,))
            if c.fetchone() is None:
                raise NoChainTableError(self.table)
            c.execute(f"SELECT h.notification_id FROM {self.table} h JOIN {self.events_table} e "
                      f"ON {self._matching} ORDER BY h.notification_id LIMIT 1")
            start = c.fetchone()
            # One read transaction: the events in key order, each with its own hash; then the
            # hashes whose event is gone (none, in a store nobody edited by hand).
            connection = c.sqlite_cursor.connection
            events = connection.execute(
                f"SELECT e.originator_id, e.originator_version, e.topic, e.state, e.rowid, h.hash "
                f"FROM {self.events_table} e LEFT JOIN {self.table} h ON {self._matching} "
                f"{'WHERE e.originator_id = ?' if params else ''} "
                "ORDER BY e.originator_id, e.originator_version", params)
            left = connection.execute(
                f"SELECT originator_id, originator_version, hash FROM {self.table} h WHERE {one_stream} "
                f"NOT EXISTS (SELECT 1 FROM {self.events_table} e WHERE {self._matching}) "
                "ORDER BY originator_id, originator_version", params * 2).fetchall()
            yield ChainSnapshot(None if start is None else start[0], with_left_hashes(iter(events), left))


def with_left_hashes(events: Iterator[Any], left: list[Any]) -> Iterator[Link]:
    """Links from events in (stream, version) order, each with its own hash or None, and from the
    hashes `left` without their event, in the same order. A stream's rows come one after another."""
    pending = iter(left)
    spare = next(pending, None)
    for stored_id, rows in itertools.groupby(events, key=lambda row: row[0]):
        while spare is not None and spare[0] < stored_id:  # a stream with hashes only
            spare = yield from _hashes_only(spare, pending)
        stream = UUID(stored_id)
        links = {row[1]: Link(stream, row[1], row[2], row[3], row[4], row[5]) for row in rows}
        while spare is not None and spare[0] == stored_id:
            link = links.get(spare[1])
            if link is None:
                links[spare[1]] = Link(stream, spare[1], None, None, None, spare[2])
            else:  # another event was put where one was deleted: the hash left stands for the version
                links[spare[1]] = Link(stream, link.version, link.topic, link.state, link.notification_id,
                                       spare[2])
            spare = next(pending, None)
        yield from (links[version] for version in sorted(links))
    while spare is not None:
        spare = yield from _hashes_only(spare, pending)


def _hashes_only(first: Any, pending: Iterator[Any]) -> Generator[Link, None, Any]:
    """The links of one stream that has hashes and no event; returns the next row of another."""
    stream, row = UUID(first[0]), first
    while row is not None and row[0] == first[0]:
        yield Link(stream, row[1], None, None, None, row[2])
        row = next(pending, None)
    return row

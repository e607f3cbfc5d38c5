"""Process recorders with exact, multi-row tracking and hash-chained events, on every store.

Every handled message or command leaves its own tracking row, written in the
same transaction as the events it caused. Messages may arrive out of order, so
"was this one handled?" must ask for that row, not compare with the highest
position seen, as the library's `has_tracking_id` does. A batch of messages
handled together passes `trackings=[...]`: all its rows commit with its events.

Every event's hash (`chain`) is written in the same transaction as the event, in a
table beside the events (`chain_tables`); snapshots are not chained. So is each data
key made for the save (`sealing.new_keys`: a rival's key kept first fails the save),
and each key at hand it sealed with is checked to be kept still (`sealing.kept_keys`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    IntegrityError,
    ProcessRecorder,
    StoredEvent,
    Tracking,
)
from eventsourcing.popo import POPOFactory, POPOProcessRecorder
from eventsourcing.postgres import PostgresFactory
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore, SQLiteProcessRecorder

from infra.eventstore.chain import Link, as_uuid, chain, needed
from infra.eventstore.chain_tables import ChainedStore, ChainSnapshot
from infra.eventstore.ddl import (
    SerialisedAggregateRecorder,
    SerialisedApplicationRecorder,
    SerialisedTrackingRecorder,
)
from infra.eventstore.key_tables import MemoryKeyTable, SQLiteKeyTable
from infra.eventstore.postgres_recorder import PostgresExactlyOnceRecorder
from infra.eventstore.privacy import PersonalDataKeys
from infra.eventstore.sealing import settling_seals
from infra.eventstore.sqlite_chain import SQLiteHashes

__all__ = ["MemoryFactory", "PostgresExactlyOnceFactory", "PostgresExactlyOnceRecorder"]


class SQLiteExactlyOnceRecorder(SQLiteProcessRecorder, ChainedStore):
    def __init__(self, datastore: SQLiteDatastore, *, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.hashes = SQLiteHashes(datastore)
        self.key_table = SQLiteKeyTable(datastore)
        self.personal: PersonalDataKeys | None = None  # attached by the composition root

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), SQLiteHashes.create_statement,
                *SQLiteHashes.upgrade, SQLiteKeyTable.create_statement]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        return settling_seals(self.personal, stored_events, lambda: super(
            SQLiteExactlyOnceRecorder, self).insert_events(stored_events, **kwargs))

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        returning = super()._insert_events(c, stored_events, **kwargs)
        self.key_table.keep(c, stored_events)
        for tracking in kwargs.get("trackings") or ():
            self._insert_tracking(c, tracking)
        if stored_events and returning:
            self.hashes.write(c, stored_events, returning)
        return returning

    def chain_snapshot(self, stream_id: UUID | None = None) -> AbstractContextManager[ChainSnapshot]:
        return self.hashes.snapshot(stream_id)

    def has_tracking_id(self, application_name: str, notification_id: int | None) -> bool:
        if notification_id is None:
            return True
        with self.datastore.transaction(commit=False) as cursor:
            return _sqlite_has_row(cursor, application_name, notification_id)


def _sqlite_has_row(cursor: SQLiteCursor, application_name: str, notification_id: int) -> bool:
    cursor.execute(
        "SELECT 1 FROM tracking WHERE application_name = ? AND notification_id = ?",
        (application_name, notification_id),
    )
    return cursor.fetchone() is not None


class MemoryExactlyOnceRecorder(POPOProcessRecorder, ChainedStore):
    def __init__(self) -> None:
        super().__init__()
        self._tracked: set[tuple[str, int]] = set()
        self.hashes: dict[tuple[UUID, int], bytes] = {}
        self.key_table = MemoryKeyTable()
        self.personal: PersonalDataKeys | None = None  # attached by the composition root

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        return settling_seals(self.personal, stored_events, lambda: super(
            MemoryExactlyOnceRecorder, self).insert_events(stored_events, **kwargs))

    def _assert_tracking_uniqueness(self, tracking: Tracking) -> None:
        if (tracking.application_name, tracking.notification_id) in self._tracked:
            raise IntegrityError(f"already tracked: {tracking}")

    def _assert_uniqueness(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._assert_uniqueness(stored_events, **kwargs)
        batch = [(t.application_name, t.notification_id) for t in kwargs.get("trackings") or ()]
        if len(set(batch)) < len(batch) or self._tracked.intersection(batch):
            raise IntegrityError("a tracking row of the batch is already recorded")

    def _update_table(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        self.key_table.keep(stored_events)
        notification_ids = super()._update_table(stored_events, **kwargs)
        for tracking in kwargs.get("trackings") or ():
            self._insert_tracking(tracking)
        stored = {key: self.hashes[key] for key in needed(stored_events) if key in self.hashes}
        for stream_id, version, digest in chain(stored_events, stored):
            self.hashes.setdefault((stream_id, version), digest)
        return notification_ids

    @contextmanager
    def chain_snapshot(self, stream_id: UUID | None = None) -> Iterator[ChainSnapshot]:
        with self._database_lock:
            yield ChainSnapshot(self._chain_start(), iter(self._links(stream_id)))

    def _links(self, stream_id: UUID | None) -> list[Link]:
        events = {
            (as_uuid(stream), version): position
            for stream, versions in self._stored_events_index.items()
            if stream_id is None or stream == str(stream_id)
            for version, position in versions.items()
        }
        hashes = {key: digest for key, digest in self.hashes.items() if stream_id in (None, key[0])}
        links = []
        for key in sorted(events.keys() | hashes.keys()):
            position = events.get(key)
            event = None if position is None else self._stored_events[position]
            links.append(Link(key[0], key[1], None if event is None else event.topic,
                              None if event is None else event.state,
                              None if position is None else position + 1, hashes.get(key)))
        return links

    def _chain_start(self) -> int | None:
        positions = [
            position for stream, versions in self._stored_events_index.items()
            for version, position in versions.items() if (as_uuid(stream), version) in self.hashes
        ]
        return min(positions) + 1 if positions else None

    def _insert_tracking(self, tracking: Tracking) -> None:
        self._tracked.add((tracking.application_name, tracking.notification_id))
        current = self._max_tracking_ids[tracking.application_name]
        if current is None or tracking.notification_id > current:
            self._max_tracking_ids[tracking.application_name] = tracking.notification_id

    def has_tracking_id(self, application_name: str, notification_id: int | None) -> bool:
        if notification_id is None:
            return True
        with self._database_lock:
            return (application_name, notification_id) in self._tracked


class MemoryFactory(POPOFactory):
    """The library's in-memory store, with exact multi-row tracking."""

    def process_recorder(self) -> ProcessRecorder:
        return MemoryExactlyOnceRecorder()


class PostgresExactlyOnceFactory(PostgresFactory):
    """The library's PostgreSQL store, with exact multi-row tracking and serialised table creation."""

    aggregate_recorder_class = SerialisedAggregateRecorder
    application_recorder_class = SerialisedApplicationRecorder
    tracking_recorder_class = SerialisedTrackingRecorder
    process_recorder_class = PostgresExactlyOnceRecorder

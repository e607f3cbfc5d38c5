"""The PostgreSQL recorder with exact, multi-row tracking and hash-chained events (see `recorders`).

A save is one call of the events table's function (`save_function`); a store
without the function saves as the library does, a pipeline of statements in a
transaction, with this store's steps (hashes, keys, tracking rows) queued in it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, Notification, OperationalError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from eventsourcing.utils import retry
from psycopg import Cursor, sql
from psycopg.rows import DictRow, dict_row, tuple_row

from infra.eventstore.chain_tables import ChainedStore, ChainSnapshot, PostgresHashes
from infra.eventstore.ddl import SerialisedDDL
from infra.eventstore.event_rows import EventRows
from infra.eventstore.key_tables import PostgresKeyTable
from infra.eventstore.privacy import PersonalDataKeys
from infra.eventstore.save_function import SaveFunction
from infra.eventstore.sealing import kept_keys, new_keys, settling_seals
from infra.eventstore.statements import Rendered, kept_cursor


def notification(id_: int, originator_id: UUID, version: int, topic: str, state: bytes) -> Notification:
    """`Notification(...)` of the row's fields as they are, at less than half its cost.

    The library's frozen dataclass sets each field through `object.__setattr__`;
    a relay and a replay make one per event read. The fields are written as
    `__init__` would write them (it has no `__post_init__` and no slots).
    """
    made: Notification = _new(Notification)
    made.__dict__.update(originator_id=originator_id, originator_version=version, topic=topic, state=state,
                         id=id_)
    return made


_new = object.__new__


class PostgresExactlyOnceRecorder(PostgresProcessRecorder, SerialisedDDL, ChainedStore):
    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
    ) -> None:
        super().__init__(
            datastore, events_table_name=events_table_name, tracking_table_name=tracking_table_name
        )
        # The library's statements that saves, loads and positions run, rendered once (`statements`).
        self.max_notification_id_statement = Rendered(self.max_notification_id_statement)
        self.insert_tracking_statement = Rendered(self.insert_tracking_statement)
        self.max_tracking_id_statement = Rendered(self.max_tracking_id_statement)
        self._tracked = Rendered(sql.SQL(
            "SELECT 1 FROM {}.{} WHERE application_name = %s AND notification_id = %s"
        ).format(sql.Identifier(self.datastore.schema), sql.Identifier(self.tracking_table_name)))
        self.hashes = PostgresHashes(datastore, events_table_name)
        self.key_table = PostgresKeyTable(datastore)
        self.event_rows = EventRows(datastore.schema, events_table_name, datastore.originator_id_type)
        self._notify = sql.SQL("NOTIFY {}").format(sql.Identifier(self.channel_name)).as_bytes(None)
        self.personal: PersonalDataKeys | None = None  # attached by the composition root
        self.save_function = SaveFunction(
            schema=datastore.schema, events_table=events_table_name, tracking_table=tracking_table_name,
            key_table=self.key_table.name, id_type=datastore.originator_id_type, channel=self.channel_name)
        self.sql_create_statements += [self.hashes.create_statement, self.key_table.create_statement,
                                       self.save_function.create_statement]

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        chaining = partial(self._insert_chained, stored_events, **kwargs)
        return settling_seals(self.personal, stored_events, chaining)

    def _insert_chained(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        try:
            notification_ids: Sequence[int] | None = self._save(stored_events, **kwargs)
            if notification_ids is None:  # a store without the save function
                notification_ids = super().insert_events(stored_events, **kwargs)
        except BaseException:
            self.hashes.heads.failed()
            raise
        self.hashes.heads.committed()
        return notification_ids

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _save(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The save in one statement (`save_function`); None when the store has no function."""
        trackings = [*filter(None, [kwargs.get("tracking")]), *(kwargs.get("trackings") or ())]
        with self.datastore.get_connection() as conn:
            if not self.save_function.usable(conn):
                return None
            curs = kept_cursor(conn, dict_row)
            if trackings and not self.has_checked_for_multi_row_tracking_table:
                self._check_has_multi_row_tracking_table(curs)
            chained = self.hashes.chained(curs, stored_events) if stored_events else []
            return self.save_function.save(
                conn, stored_events, chained, new_keys(stored_events), kept_keys(stored_events), trackings,
                self.datastore.lock_timeout)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_tracking(self, tracking: Tracking) -> None:
        """A position recorded alone (a relay's): one statement committing itself, not BEGIN, it, COMMIT."""
        with self.datastore.get_connection() as conn:
            self._insert_tracking(kept_cursor(conn, dict_row), tracking)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        chained = self.hashes.chained(curs, stored_events)  # before the table's lock: see chain_tables
        # The library's steps (lock the table, notify, insert), the insert bound in binary (`event_rows`).
        self._lock_table(curs)
        curs.execute(self._notify)
        self.event_rows.insert(curs, stored_events)
        self.hashes.insert(curs, chained)

    def chain_snapshot(self, stream_id: UUID | None = None) -> AbstractContextManager[ChainSnapshot]:
        return self.hashes.snapshot(stream_id)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # Left in the pipeline, a duplicate tracking row aborts the statements queued
        # after it and surfaces as PipelineAborted, which the library takes for a lost
        # connection and retries ten times. Syncing here raises IntegrityError at once.
        with curs.connection.pipeline():
            super()._insert_events(curs, stored_events, **kwargs)
            self.key_table.keep(curs, stored_events)
            for tracking in kwargs.get("trackings") or ():
                self._insert_tracking(curs, tracking)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (),
        *, inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """The library's query, its rows read as tuples (a dict per row cost a third of a replay's
        reading) and sent in binary (the state's bytes as they are, not spelt out in hex)."""
        conditions: list[str] = []
        params: list[Any] = []
        if start is not None:
            conditions.append("notification_id >= %s" if inclusive_of_start else "notification_id > %s")
            params.append(start)
        if stop is not None:
            conditions.append("notification_id <= %s")
            params.append(stop)
        if topics:
            conditions.append("topic = ANY(%s)")
            params.append(list(topics))
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            statement = self._selecting(" AND ".join(conditions))
            curs.execute(statement, [*params, limit], prepare=True, binary=True)
            return [notification(i, o, v, t, bytes(state)) for i, o, v, t, state in curs.fetchall()]

    def select_events_after(self, versions: Mapping[UUID, int]) -> list[StoredEvent]:
        """Every event of these streams above the version given for each, in one query.

        A consumer loads the aggregates of a whole batch of messages at once
        instead of one round trip each (see ContextApplication.preload).
        """
        if not versions:
            return []
        with self.datastore.get_connection() as conn:
            curs = kept_cursor(conn)
            curs.execute(self.event_rows.after, (list(versions), list(versions.values())), prepare=True,
                         binary=True)
            return [
                StoredEvent(originator_id=i, originator_version=v, topic=t, state=bytes(state))
                for i, v, t, state in curs.fetchall()
            ]

    @functools.lru_cache(maxsize=16)  # noqa: B019 (one per recorder, for its life; a few shapes of query)
    def _selecting(self, conditions: str) -> Rendered:
        return Rendered(sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {}.{}"
            + (f" WHERE {conditions}" if conditions else "") + " ORDER BY notification_id LIMIT %s"
        ).format(sql.Identifier(self.datastore.schema), sql.Identifier(self.events_table_name)))

    def has_tracking_id(self, application_name: str, notification_id: int | None) -> bool:
        if notification_id is None:
            return True
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._tracked, (application_name, notification_id), prepare=True)
            return curs.fetchone() is not None

"""Writing a save's events to a PostgreSQL events table with its parameters bound in binary, and
reading the newest events of many streams at once.

The library binds a save's events as one array of a composite type, which psycopg
builds and escapes in Python, value by value: for a window of 50 events that cost
three times what binding four plain arrays in binary does. A save of a few events
binds each value in binary instead (`VALUES`): below about ten rows, the arrays'
own cost is more than what they save. Either way, one prepared statement a size.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from eventsourcing.persistence import StoredEvent
from psycopg import Cursor, sql
from psycopg.rows import DictRow

from infra.eventstore.statements import Rendered

ROWS_AS_VALUES = 8


class EventRows:
    """The insert of one events table, returning the events' notification ids in their order; `after`."""

    def __init__(self, schema: str, table: str, id_type: str) -> None:
        self._names = {"schema": sql.Identifier(schema), "table": sql.Identifier(table),
                       "id_type": sql.SQL(id_type)}
        self._arrays = Rendered(sql.SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id").format(**self._names))
        # Each stream looked up by its key. Joined as sets, the planner, guessing at a young table,
        # scanned all of it for every batch of messages; OFFSET 0 keeps the subquery a lookup.
        self.after = Rendered(sql.SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state"
            " FROM unnest(%b::{id_type}[], %b::bigint[]) AS c(id, v)"
            " CROSS JOIN LATERAL (SELECT * FROM {schema}.{table} s"
            " WHERE s.originator_id = c.id AND s.originator_version > c.v OFFSET 0) e"
            " ORDER BY e.originator_id, e.originator_version").format(**self._names))
        """Every event of the streams `(ids, versions)` above the version given for each."""

    def insert(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]) -> None:
        """Queue the insert on `curs`; its rows, once fetched, are the events' notification ids."""
        if len(stored_events) > ROWS_AS_VALUES:
            curs.execute(self._arrays, (
                [e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
                [e.topic for e in stored_events], [e.state for e in stored_events],
            ), prepare=True)
            return
        params = [value for e in stored_events
                  for value in (e.originator_id, e.originator_version, e.topic, e.state)]
        curs.execute(self._values(len(stored_events)), params, prepare=True)

    @functools.lru_cache(maxsize=ROWS_AS_VALUES)  # noqa: B019 (one per recorder, for its life)
    def _values(self, n: int) -> sql.Composed:
        return Rendered(sql.SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) VALUES {rows} "
            "RETURNING notification_id").format(
                **self._names, rows=sql.SQL(", ".join(["(%b::{id_type}, %b::bigint, %b, %b)"] * n)).format(
                    **self._names)))

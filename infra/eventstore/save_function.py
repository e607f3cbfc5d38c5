"""A save on PostgreSQL in one statement: a function beside each events table.

The library writes a save as a pipeline in a transaction: BEGIN, the lock timeout,
the table's lock, NOTIFY, the events; then the hashes, the keys and the tracking rows
of this store; COMMIT. psycopg pays for each statement of a pipeline in Python, and
that cost three times the CPU of one call of a function doing the same steps, in
the same order, in the one transaction the statement runs in (the pool's
connections commit each statement). `<events table>_save` is created with the
application's tables (`saga migrate`, or any role starting with CREATE_TABLE on).

What it does is what the pipeline did, step for step: the events table locked in
EXCLUSIVE mode (so notification ids commit in their order), the events inserted
(their notification ids returned, in their order), its channel notified with the
last of them (a follower that has read that far is not woken again), each
event's hash (`chain_tables`: a hash row already there is kept), the keys made for
the save (a key kept already for the person fails it) and the keys it sealed with
checked (`key_tables`: one no longer kept fails it), and the tracking rows (one
already there fails it). A save of tracking rows alone neither locks nor notifies.
Any failure rolls the whole statement back.

A store migrated before the function existed, running with CREATE_TABLE off, has no
function: its saves go on as the library's pipeline (`missing`), with one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent, Tracking
from psycopg import Connection, sql
from psycopg.rows import tuple_row

from infra.eventstore.statements import Rendered, kept_cursor

logger = logging.getLogger(__name__)

BODY = """
DECLARE
  positions bigint[];
BEGIN
  IF cardinality(ids) > 0 THEN
    PERFORM set_config('lock_timeout', lock_timeout, true);
    LOCK TABLE {schema}.{events} IN EXCLUSIVE MODE;
    WITH inserted AS (
      INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state)
      SELECT * FROM unnest(ids, versions, topics, states) RETURNING notification_id)
    SELECT array_agg(notification_id ORDER BY notification_id) INTO positions FROM inserted;
    -- The last position it holds: a follower that has read past it need not read again.
    PERFORM pg_notify({channel}, positions[cardinality(positions)]::text);
    RETURN QUERY SELECT unnest(positions);
    INSERT INTO {schema}.{hashes} (originator_id, originator_version, hash)
      SELECT * FROM unnest(hash_ids, hash_versions, hashes) ON CONFLICT DO NOTHING;
  END IF;
  IF cardinality(new_subjects) > 0 THEN
    INSERT INTO {keys} (subject, stored) SELECT * FROM unnest(new_subjects, new_stored);
  END IF;
  IF cardinality(kept_subjects) > 0 THEN
    -- A key no longer kept (or another) inserts its person with no key: a NOT NULL violation.
    INSERT INTO {keys} (subject, stored) SELECT k.subject, NULL::bytea
      FROM unnest(kept_subjects, kept_stored) AS k(subject, stored)
      WHERE NOT EXISTS (SELECT 1 FROM {keys} t WHERE t.subject = k.subject AND t.stored = k.stored);
  END IF;
  IF cardinality(tracked) > 0 THEN
    INSERT INTO {schema}.{tracking} (application_name, notification_id)
      SELECT * FROM unnest(applications, tracked);
  END IF;
END
"""


class SaveFunction:
    """The function of one events table: its CREATE statement, and a save through it."""

    def __init__(
        self, *, schema: str, events_table: str, tracking_table: str, key_table: sql.Composable,
        id_type: str, channel: str,
    ) -> None:
        name = f"{events_table}_save"
        if len(name) > 63:
            raise ValueError(f"identifier too long: {name}")
        names = {"schema": sql.Identifier(schema), "name": sql.Identifier(name), "id_type": sql.SQL(id_type)}
        body = sql.SQL(BODY).format(
            schema=sql.Identifier(schema), events=sql.Identifier(events_table),
            hashes=sql.Identifier(f"{events_table}_hashes"), keys=key_table,
            tracking=sql.Identifier(tracking_table), channel=sql.Literal(channel),
        ).as_string(None)
        self.create_statement = sql.SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{name}(ids {id_type}[], versions bigint[], topics text[],"
            " states bytea[], hash_ids {id_type}[], hash_versions bigint[], hashes bytea[],"
            " new_subjects uuid[], new_stored bytea[], kept_subjects uuid[], kept_stored bytea[],"
            " applications text[], tracked bigint[], lock_timeout text)"
            " RETURNS SETOF bigint LANGUAGE plpgsql AS {body}"
        ).format(**names, body=sql.Literal(body))
        # Lists bind in binary (%b): as text, psycopg escapes each bytea with a regular expression.
        self._call = Rendered(sql.SQL(
            "SELECT * FROM {schema}.{name}(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[],"
            " %b::{id_type}[], %b::bigint[], %b::bytea[], %b::uuid[], %b::bytea[], %b::uuid[], %b::bytea[],"
            " %b::text[], %b::bigint[], %b::text)"
        ).format(**names))
        self._exists = sql.SQL("SELECT to_regprocedure({})").format(sql.Literal(
            f"{sql.Identifier(schema).as_string(None)}.{sql.Identifier(name).as_string(None)}"
            f"({id_type}[], bigint[], text[], bytea[], {id_type}[], bigint[], bytea[], uuid[], bytea[],"
            " uuid[], bytea[], text[], bigint[], text)"))
        self._name = f"{schema}.{name}"
        self.missing: bool | None = None
        """Unknown until the first save asks; True: the store has no function, saves use the pipeline."""

    def usable(self, connection: Connection[Any]) -> bool:
        """Whether the store has the function (asked once, at the first save)."""
        if self.missing is None:
            with connection.cursor(row_factory=tuple_row) as cursor:
                row = cursor.execute(self._exists).fetchone()
            self.missing = row is None or row[0] is None
            if self.missing:
                logger.warning("no function %s in the store (`saga migrate` creates it): saving statement "
                               "by statement", self._name)
        return not self.missing

    def save(
        self, connection: Connection[Any], stored_events: Sequence[StoredEvent],
        hash_rows: Sequence[tuple[UUID, int, bytes]], new: Mapping[UUID, bytes], kept: Mapping[UUID, bytes],
        trackings: Sequence[Tracking], lock_timeout: int,
    ) -> list[int]:
        """One statement, committed by itself; the events' notification ids in their order."""
        params = (
            [e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
            [e.topic for e in stored_events], [e.state for e in stored_events],
            [r[0] for r in hash_rows], [r[1] for r in hash_rows], [r[2] for r in hash_rows],
            list(new), list(new.values()), list(kept), list(kept.values()),
            [t.application_name for t in trackings], [t.notification_id for t in trackings],
            f"{lock_timeout}s",
        )
        cursor = kept_cursor(connection)
        cursor.execute(self._call, params, prepare=True)
        return [row[0] for row in cursor.fetchall()]

"""A save's events written to PostgreSQL with binary parameters: every size reads back as it was saved."""

from __future__ import annotations

import os
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from psycopg import sql

from infra.eventstore.event_rows import ROWS_AS_VALUES
from infra.eventstore.recorders import PostgresExactlyOnceRecorder


@pytest.fixture
def recorder(orders_recorder: PostgresExactlyOnceRecorder) -> PostgresExactlyOnceRecorder:
    return orders_recorder


@pytest.mark.parametrize("size", [1, 3, ROWS_AS_VALUES, ROWS_AS_VALUES + 1, 200])
def test_a_save_of_any_size_returns_its_positions_in_order_and_reads_back_byte_for_byte(
    recorder: PostgresExactlyOnceRecorder, size: int
) -> None:
    stream = uuid4()
    events = [
        StoredEvent(originator_id=stream if i % 2 else uuid4(), originator_version=i + 1,
                    topic=f"tests.topic:Event{i}", state=os.urandom(50 + i) + b"\x00\\'\"")
        for i in range(size)
    ]
    first = recorder.insert_events(events[:1])
    positions = recorder.insert_events(events[1:]) if size > 1 else []
    assert first is not None and positions is not None
    ids = [*first, *positions]
    assert ids == sorted(ids) and len(set(ids)) == size
    read = recorder.select_notifications(ids[0], size)
    assert [n.id for n in read] == ids
    assert [(n.originator_id, n.originator_version, n.topic, n.state) for n in read] == [
        (e.originator_id, e.originator_version, e.topic, e.state) for e in events
    ]


@pytest.mark.parametrize("size", [2, ROWS_AS_VALUES + 2])
def test_a_save_that_repeats_a_version_writes_none_of_its_events(
    recorder: PostgresExactlyOnceRecorder, size: int
) -> None:
    stream = uuid4()
    recorder.insert_events([StoredEvent(stream, 1, "tests.topic:Event", b"{}")])
    clash = [StoredEvent(uuid4(), 1, "tests.topic:Event", b"{}") for _ in range(size - 1)]
    with pytest.raises(IntegrityError):
        recorder.insert_events([*clash, StoredEvent(stream, 1, "tests.topic:Event", b"{}")])
    assert [n.originator_id for n in recorder.select_notifications(1, 100)] == [stream]


def test_the_newest_events_of_a_batch_of_streams_are_looked_up_by_key_never_by_scanning_the_table(
    recorder: PostgresExactlyOnceRecorder,
) -> None:
    streams = [uuid4() for _ in range(300)]
    recorder.insert_events([StoredEvent(s, v, "tests.topic:E", b"{}") for s in streams for v in (1, 2)])
    asked = {streams[0]: 1, streams[7]: 0, uuid4(): 0}
    found = recorder.select_events_after(asked)
    assert [(e.originator_id, e.originator_version) for e in found] == sorted(
        [(streams[0], 2), (streams[7], 1), (streams[7], 2)])
    with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
        # A prepared statement's plan is made once for any values: the generic plan is the one to check.
        curs.execute("SET plan_cache_mode = force_generic_plan")
        plan = curs.execute(
            sql.SQL("EXPLAIN ") + recorder.event_rows.after, (list(asked), list(asked.values()))
        ).fetchall()
        curs.execute("RESET plan_cache_mode")
    text = "\n".join(str(next(iter(row.values()))) for row in plan)
    assert "Seq Scan" not in text, text

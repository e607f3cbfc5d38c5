"""A save's events written to PostgreSQL with binary parameters: every size reads back as it was saved."""

from __future__ import annotations

import os
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from commands.orders import Orders
from infra.eventstore.event_rows import ROWS_AS_VALUES
from infra.eventstore.persistence import application_env
from infra.settings import Settings


@pytest.mark.parametrize("size", [1, 3, ROWS_AS_VALUES, ROWS_AS_VALUES + 1, 200])
def test_a_save_of_any_size_returns_its_positions_in_order_and_reads_back_byte_for_byte(
    postgres_settings: Settings, size: int
) -> None:
    orders = Orders(application_env(postgres_settings, "Orders"))
    try:
        recorder = orders.process_recorder
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
    finally:
        orders.close()


@pytest.mark.parametrize("size", [2, ROWS_AS_VALUES + 2])
def test_a_save_that_repeats_a_version_writes_none_of_its_events(
    postgres_settings: Settings, size: int
) -> None:
    orders = Orders(application_env(postgres_settings, "Orders"))
    try:
        recorder = orders.process_recorder
        stream = uuid4()
        recorder.insert_events([StoredEvent(stream, 1, "tests.topic:Event", b"{}")])
        clash = [StoredEvent(uuid4(), 1, "tests.topic:Event", b"{}") for _ in range(size - 1)]
        with pytest.raises(IntegrityError):
            recorder.insert_events([*clash, StoredEvent(stream, 1, "tests.topic:Event", b"{}")])
        assert [n.originator_id for n in recorder.select_notifications(1, 100)] == [stream]
    finally:
        orders.close()

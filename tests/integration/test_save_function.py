"""A save on PostgreSQL is one call of its events table's function: every step the statements took.

And a store whose function is missing (migrated before it existed, tables not created on
start) saves as the library does, statement by statement, with the same guarantees.
"""

from __future__ import annotations

import gc
import logging
import time
import weakref
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from psycopg import sql
from psycopg.rows import dict_row

from infra.eventstore.recorders import PostgresExactlyOnceRecorder
from infra.eventstore.statements import Rendered, kept_cursor
from infra.settings import Settings


@pytest.fixture
def recorder(orders_recorder: PostgresExactlyOnceRecorder) -> PostgresExactlyOnceRecorder:
    return orders_recorder


@pytest.fixture(params=["function", "statements"])
def saving(
    request: pytest.FixtureRequest, recorder: PostgresExactlyOnceRecorder
) -> PostgresExactlyOnceRecorder:
    """The recorder saving through its function, and the same once the store has lost it."""
    if request.param == "statements":
        drop_function(recorder)
    return recorder


def test_the_library_s_statements_are_rendered_once_as_the_library_renders_them(
    recorder: PostgresExactlyOnceRecorder,
) -> None:
    library = PostgresProcessRecorder(
        recorder.datastore, events_table_name=recorder.events_table_name,
        tracking_table_name=recorder.tracking_table_name,
    )
    for name in ("max_notification_id_statement", "insert_tracking_statement", "max_tracking_id_statement"):
        ours, theirs = getattr(recorder, name), getattr(library, name)
        assert isinstance(ours, Rendered), name
        assert ours.as_bytes(None) == theirs.as_bytes(None), name
    # and they run: a position recorded, found, and the highest one read back
    recorder.insert_tracking(Tracking("upstream", 4))
    assert recorder.has_tracking_id("upstream", 4) and not recorder.has_tracking_id("upstream", 5)
    assert recorder.max_tracking_id("upstream") == 4
    assert recorder.max_notification_id() is None


def drop_function(recorder: PostgresExactlyOnceRecorder) -> None:
    with recorder.datastore.get_connection() as conn:
        conn.execute(sql.SQL("DROP FUNCTION {}.{}").format(
            sql.Identifier(recorder.datastore.schema), sql.Identifier(f"{recorder.events_table_name}_save")))
    recorder.save_function.missing = None  # as a process started on such a store


def rows(recorder: PostgresExactlyOnceRecorder) -> dict[str, list[tuple[object, ...]]]:
    """Everything a save writes: events, hashes and tracking rows, in key order."""
    schema = sql.Identifier(recorder.datastore.schema)
    queries = {
        "events": sql.SQL("SELECT originator_id, originator_version FROM {}.{} ORDER BY 1, 2").format(
            schema, sql.Identifier(recorder.events_table_name)),
        "hashes": sql.SQL("SELECT originator_id, originator_version FROM {}.{} ORDER BY 1, 2").format(
            schema, sql.Identifier(f"{recorder.events_table_name}_hashes")),
        "tracking": sql.SQL("SELECT application_name, notification_id FROM {}.{} ORDER BY 1, 2").format(
            schema, sql.Identifier(recorder.tracking_table_name)),
    }
    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=psycopg.rows.tuple_row) as c:
        return {name: c.execute(query).fetchall() for name, query in queries.items()}


def event(stream: UUID, version: int = 1) -> StoredEvent:
    return StoredEvent(originator_id=stream, originator_version=version, topic="tests.topic:E", state=b"{}")


def test_a_batch_tracking_messages_of_several_applications_commits_every_row_with_its_events(
    saving: PostgresExactlyOnceRecorder,
) -> None:
    first, second = uuid4(), uuid4()
    trackings = [Tracking("Payments", 7), Tracking("Inventory", 7), Tracking("Payments", 9)]
    ids = saving.insert_events([event(first), event(second), event(first, 2)], trackings=trackings)
    assert ids is not None and len(ids) == 3 and ids == sorted(ids)
    found = rows(saving)
    assert found["events"] == found["hashes"] == sorted([(first, 1), (first, 2), (second, 1)])
    assert found["tracking"] == [("Inventory", 7), ("Payments", 7), ("Payments", 9)]
    assert saving.has_tracking_id("Inventory", 7) and not saving.has_tracking_id("Inventory", 9)


def test_a_save_repeating_one_tracked_message_writes_nothing_at_all(
    saving: PostgresExactlyOnceRecorder,
) -> None:
    saving.insert_events([event(uuid4())], trackings=[Tracking("Payments", 1)])
    before = rows(saving)
    with pytest.raises(IntegrityError):
        saving.insert_events([event(uuid4()), event(uuid4())], trackings=[Tracking("Payments", 2),
                                                                          Tracking("Payments", 1)])
    assert rows(saving) == before
    # Its hashes were never kept as committed: the stream's next save reads the store and chains on.
    assert not saving.has_tracking_id("Payments", 2)


def test_a_save_of_tracking_rows_alone_records_them_and_no_event(saving: PostgresExactlyOnceRecorder) -> None:
    assert saving.insert_events([], trackings=[Tracking("Orders", 3)]) in ([], None)
    assert rows(saving) == {"events": [], "hashes": [], "tracking": [("Orders", 3)]}


def test_a_save_wakes_the_followers_of_its_channel_telling_its_last_position(
    saving: PostgresExactlyOnceRecorder, postgres_settings: Settings
) -> None:
    where = postgres_settings.postgres
    assert where is not None
    heard: list[tuple[str, str]] = []
    with psycopg.connect(where.url, autocommit=True) as listener:
        listener.add_notify_handler(lambda notify: heard.append((notify.channel, notify.payload)))
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(saving.channel_name)))
        ids = saving.insert_events([event(uuid4()), event(uuid4())])
        deadline = time.monotonic() + 10
        while not heard and time.monotonic() < deadline:
            time.sleep(0.05)
            listener.execute("SELECT 1")  # reads what the server sent meanwhile
    assert ids is not None
    # Through the function the NOTIFY tells the save's last position; statement by statement, nothing.
    assert heard in ([(saving.channel_name, str(ids[-1]))], [(saving.channel_name, "")])
    assert (heard[0][1] == "") is saving.save_function.missing


def test_a_store_without_the_function_says_so_once_and_saves_statement_by_statement(
    recorder: PostgresExactlyOnceRecorder, caplog: pytest.LogCaptureFixture,
) -> None:
    recorder.insert_events([event(uuid4())])
    assert recorder.save_function.missing is False
    drop_function(recorder)
    with caplog.at_level(logging.WARNING, logger="infra.eventstore.save_function"):
        for _ in range(3):
            recorder.insert_events([event(uuid4())])
    assert recorder.save_function.missing is True
    assert [r.getMessage() for r in caplog.records].count(
        f"no function {recorder.datastore.schema}.{recorder.events_table_name}_save in the store "
        "(`saga migrate` creates it): saving statement by statement") == 1
    assert len(rows(recorder)["events"]) == 4


def test_a_refused_save_leaves_its_connection_fit_for_the_next_save_and_load(
    saving: PostgresExactlyOnceRecorder,
) -> None:
    # A save, a load and a position share each connection's kept cursor (`statements.kept_cursor`).
    saving.insert_events([event(uuid4())], trackings=[Tracking("Payments", 1)])
    for _ in range(3):  # more than the pool's connections
        with pytest.raises(IntegrityError):
            saving.insert_events([event(uuid4())], trackings=[Tracking("Payments", 1)])
    stream = uuid4()
    ids = saving.insert_events([event(stream), event(stream, 2)], trackings=[Tracking("Payments", 2)])
    assert ids is not None and len(ids) == 2
    assert [e.originator_version for e in saving.select_events_after({stream: 0})] == [1, 2]
    assert saving.has_tracking_id("Payments", 2)


def test_a_connection_keeps_one_cursor_that_makes_rows_as_each_caller_asks_and_goes_with_it(
    postgres_settings: Settings,
) -> None:
    assert postgres_settings.database_url is not None
    connection = psycopg.connect(postgres_settings.database_url.split("?")[0], autocommit=True)
    cursor = kept_cursor(connection)
    assert cursor.execute("SELECT 1 AS one").fetchall() == [(1,)]
    assert kept_cursor(connection, dict_row) is cursor
    assert cursor.execute("SELECT 1 AS one").fetchall() == [{"one": 1}]
    cursor.close()
    assert kept_cursor(connection) is not cursor  # a closed one is replaced
    gone = weakref.ref(connection)
    connection.close()
    del connection, cursor
    gc.collect()
    assert gone() is None


def test_a_position_recorded_alone_commits_and_a_repeat_of_it_is_refused(
    recorder: PostgresExactlyOnceRecorder,
) -> None:
    recorder.insert_tracking(Tracking("relay", 5))
    with pytest.raises(IntegrityError):
        recorder.insert_tracking(Tracking("relay", 5))
    recorder.insert_tracking(Tracking("relay", 9))
    assert recorder.max_tracking_id("relay") == 9
    assert rows(recorder)["tracking"] == [("relay", 5), ("relay", 9)]

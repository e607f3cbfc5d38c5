"""Reading an application's log: our PostgreSQL query, and the replay's windows filtered by topic."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import Notification, StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder

from domain.order import Order, OrderLine
from domain.values import Address, Money
from infra.bootstrap import System, bootstrap
from infra.eventstore.persistence import OrjsonTranscoder
from infra.eventstore.postgres_recorder import notification
from infra.settings import Settings
from projections.applier import Unreadable, read_window
from projections.facts import Fact

STATE = b'{"timestamp": "2026-01-01T00:00:00+00:00"}'
TOPICS = ("domain.order:Order.Placed", "domain.order:Order.Completed", "domain.order:Order.Cancelled")


@pytest.fixture
def system(store_settings: Settings) -> Iterator[System]:
    built = bootstrap(store_settings)
    yield built
    built.close()


def record(system: System, count: int) -> None:
    """`count` stored events, their topics in turn, on streams of three events each."""
    events = []
    for index, topic in zip(range(count), itertools.cycle(TOPICS), strict=False):
        if index % 3 == 0:
            stream = uuid4()
        events.append(StoredEvent(stream, index % 3 + 1, topic, STATE))
    system.orders.recorder.insert_events(events)


def test_a_notification_made_from_a_row_is_the_library_s_own() -> None:
    stream = uuid4()
    made = notification(7, stream, 2, TOPICS[0], STATE)
    expected = Notification(id=7, originator_id=stream, originator_version=2, topic=TOPICS[0], state=STATE)
    assert made == expected and repr(made) == repr(expected)
    assert vars(made) == vars(expected)
    assert set(vars(made)) == {field.name for field in dataclasses.fields(Notification)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.id = 8  # type: ignore[misc]


def test_our_postgres_query_returns_what_the_library_s_does(postgres_settings: Settings) -> None:
    with bootstrap(postgres_settings) as system:
        record(system, 30)
        recorder = system.orders.recorder
        asks: list[dict[str, Any]] = [
            {"start": None, "limit": 100}, {"start": 5, "limit": 10}, {"start": 5, "limit": 10, "stop": 9},
            {"start": 5, "limit": 100, "topics": TOPICS[1:]}, {"start": 0, "limit": 4, "topics": TOPICS[:1]},
        ]
        for ask in asks:
            for inclusive in (True, False):
                ours = recorder.select_notifications(**ask, inclusive_of_start=inclusive)
                library = PostgresProcessRecorder.select_notifications(
                    recorder, **ask, inclusive_of_start=inclusive
                )
                assert ours == library, ask
                assert ours, ask


def test_a_window_holds_the_events_of_its_topics_after_its_start_up_to_its_stop(system: System) -> None:
    record(system, 30)
    head = system.orders.recorder.max_notification_id() or 0

    window = read_window(system.orders, 3, 12, frozenset(TOPICS[:2]))

    assert [item.notification_id for item in window] == [n for n in range(4, 13) if (n - 1) % 3 != 2]
    assert {item.topic for item in window} == set(TOPICS[:2])
    assert read_window(system.orders, head, head, frozenset(TOPICS)) == []


def test_an_event_of_a_window_that_cannot_be_decoded_is_returned_unreadable(system: System) -> None:
    system.orders.recorder.insert_events([StoredEvent(uuid4(), 1, TOPICS[0], b"not json")])

    [item] = read_window(system.orders, 0, 1, frozenset(TOPICS))

    assert isinstance(item, Unreadable)
    assert item.notification_id == 1


class CountingTranscoder(OrjsonTranscoder):
    decoded = 0

    def decode(self, data: bytes) -> Any:
        self.decoded += 1
        return super().decode(data)


def test_a_window_of_sealed_events_decodes_each_once_and_opens_them_all(system: System) -> None:
    address = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")
    line = [OrderLine(product_id=uuid4(), quantity=1, unit_price=Money.of("9.99"))]
    system.orders.record([Order.place(uuid4(), uuid4(), line, address) for _ in range(3)], None)
    system.orders.recorder.insert_events([StoredEvent(uuid4(), 1, TOPICS[0], b'{"sealed": no json')])
    counting = system.orders.mapper.transcoder = CountingTranscoder()

    window = read_window(system.orders, 0, 4, frozenset(TOPICS))

    opened = [item for item in window if isinstance(item, Fact)]
    assert [item.data["shipping_address"]["city"] for item in opened] == ["Springfield"] * 3
    assert isinstance(window[-1], Unreadable)
    # Each sealed event decoded once, for its customer's key and for the fact; the undecodable one twice.
    assert counting.decoded == 3 + 2


class CountingLog:
    """A recorder's notification log that counts the reads that reach it."""

    def __init__(self, recorder: Any) -> None:
        self.recorder, self.selects = recorder, 0

    def select_notifications(self, *args: Any, **kwargs: Any) -> Any:
        self.selects += 1
        return self.recorder.select_notifications(*args, **kwargs)

    def max_notification_id(self) -> int | None:
        return self.recorder.max_notification_id()  # type: ignore[no-any-return]


def test_a_follower_is_handed_this_process_s_saves_as_the_store_holds_them(system: System) -> None:
    address = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")
    line = [OrderLine(product_id=uuid4(), quantity=1, unit_price=Money.of("9.99"))]
    follower = system.orders.follower(window=10)
    log = follower.log = CountingLog(system.orders.process_recorder)
    start = follower.head()
    assert follower.read(start) == [] and log.selects == 1

    placed = [Order.place(uuid4(), uuid4(), line, address) for _ in range(2)]
    system.orders.record(placed[:1], None)
    system.orders.record(placed[1:], None)
    handed = follower.read(start)

    assert log.selects == 1  # no trip to the store
    stored = system.orders.recorder.select_notifications(start, 10, inclusive_of_start=False)
    assert handed == stored and len(stored) == 2  # ids, streams, topics and the sealed bytes alike
    assert b"Springfield" not in handed[0].state  # the address as stored: sealed

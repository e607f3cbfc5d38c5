"""`saga audit`'s table: a correlation column only when some event strays from the order's id."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from rich.console import Console

from commands.audit.timeline import TimelineEntry
from infra.cli.timeline_table import timeline_table


def entry(order_id: UUID, correlation_id: UUID | None, version: int) -> TimelineEntry:
    return TimelineEntry(
        stream_id=order_id, version=version, type="Order.Placed",
        recorded_at=datetime(2026, 1, 1, tzinfo=UTC), correlation_id=correlation_id, causation_id="command:1",
        data={}, stream="order", summary="placed", flag=None, cause=None,
    )


def rendered(order_id: UUID, entries: list[TimelineEntry]) -> str:
    console = Console(width=200, record=True)
    console.print(timeline_table(order_id, entries))
    return console.export_text()


def test_a_story_whose_every_event_carries_the_order_s_id_says_so_once() -> None:
    order_id = uuid4()

    text = rendered(order_id, [entry(order_id, order_id, 1), entry(order_id, order_id, 2)])

    assert "┃ correlation" not in text
    assert "every event's correlation id is the order's" in " ".join(text.split())


def test_an_event_with_another_correlation_id_shows_it_whole() -> None:
    order_id, stray = uuid4(), uuid4()

    text = rendered(order_id, [entry(order_id, order_id, 1), entry(order_id, stray, 2)])

    assert "correlation" in text.splitlines()[1] + text.splitlines()[2]
    assert str(stray) in text
    assert "every event's correlation id is the order's" not in " ".join(text.split())


def test_in_80_columns_a_stray_correlation_id_is_shown_whole_under_its_event() -> None:
    order_id, stray = uuid4(), uuid4()
    console = Console(width=80, record=True)

    console.print(timeline_table(order_id, [entry(order_id, order_id, 1), entry(order_id, stray, 2)], 80))

    lines = console.export_text().splitlines()
    assert any(f"correlation {stray}" in line for line in lines)
    assert max(len(line) for line in lines) <= 80


def test_in_80_columns_a_stream_is_named_as_its_causes_name_it_and_its_id_is_said_once() -> None:
    order_id = uuid4()
    console = Console(width=80, record=True)

    console.print(timeline_table(order_id, [entry(order_id, order_id, 1), entry(order_id, order_id, 2)], 80))

    text = console.export_text()
    assert "order v1" in text and "order v2" in text
    assert text.count(order_id.hex[:8]) == 2  # the whole id in the title, the short one under the table
    assert f"streams: order {order_id.hex[:8]}" in text

"""An order's timeline as a terminal table, for `saga audit`.

Ids are shown by their first eight hex digits, enough to tell the streams of one
order apart; `--json` gives them whole. A correlation id other than the order's
is shown whole and in red, since every event of the story should carry the order's.
"""

from __future__ import annotations

import re
from uuid import UUID

from rich.table import Column, Table
from rich.text import Text

from commands.audit import TimelineEntry
from commands.event_summaries import Flag

STYLES = {Flag.FAILURE: "red", Flag.COMPENSATION: "yellow", Flag.COMPLETION: "green"}
_UUID = re.compile(r"([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def timeline_table(order_id: UUID, entries: list[TimelineEntry]) -> Table:
    days = sorted({entry.recorded_at.date() for entry in entries})
    # Most orders end within a second: the day goes in the title, unless the story spans days.
    time_format = "%H:%M:%S.%f" if len(days) == 1 else "%Y-%m-%d %H:%M:%S.%f"
    # When every event carries the order's correlation id, as it should, a column of it says nothing.
    strays = any(entry.correlation_id != order_id for entry in entries)
    columns = [
        Column("time (UTC)", no_wrap=True),
        Column("stream", no_wrap=True),
        Column("v", justify="right"),
        Column("event", overflow="fold"),
        *([Column("correlation", no_wrap=True)] if strays else []),
        Column("causation", overflow="fold"),
        Column("summary", overflow="fold", ratio=1),
    ]
    table = Table(
        *columns,
        title=f"order {order_id}" + (f", {days[0].isoformat()}" if len(days) == 1 else ""),
        caption="v: the event's version in its stream; causation: the event whose message caused this one, "
                "else the causation id" + ("" if strays else "; every event's correlation id is the order's"),
    )
    for entry in entries:
        correlation = [_correlation(order_id, entry.correlation_id)] if strays else []
        table.add_row(
            entry.recorded_at.strftime(time_format)[:-3],
            f"{entry.stream} {entry.stream_id.hex[:8]}",
            str(entry.version),
            entry.type,
            *correlation,
            _causation(entry),
            Text(entry.summary),  # reasons are free text: never read them as markup
            style=STYLES.get(entry.flag) if entry.flag else None,
        )
    return table


def _correlation(order_id: UUID, correlation_id: UUID | None) -> Text:
    if correlation_id == order_id:
        return Text(order_id.hex[:8])
    return Text(str(correlation_id), style="bold red")


def _causation(entry: TimelineEntry) -> Text:
    if entry.cause is not None:
        return Text(f"{entry.cause.stream} v{entry.cause.version}")
    return Text(_UUID.sub(r"\1", entry.causation_id or "-"), style="dim")

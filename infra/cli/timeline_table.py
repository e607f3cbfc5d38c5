"""An order's timeline as a terminal table, for `saga audit`.

Ids are shown by their first eight hex digits, enough to tell the streams of one
order apart; `--json` gives them whole. A correlation id other than the order's
is shown whole and in red, since every event of the story should carry the order's.

Below WIDE columns (an 80-column terminal, or a pipe, where rich assumes 80) the
table is compact: three columns, each event's type whole on one line with its
summary folded by word beneath, the stream named as its causes name it ("saga v9"),
and each stream's id said once, under the table.
"""

from __future__ import annotations

import re
from uuid import UUID

from rich.table import Column, Table
from rich.text import Text

from commands.audit.summaries import Flag
from commands.audit.timeline import TimelineEntry

STYLES = {Flag.FAILURE: "red", Flag.COMPENSATION: "yellow", Flag.COMPLETION: "green"}
# Columns from which every field has a column of its own, the summary still 30 wide; a correlation
# column (when some event strays from the order's id) needs STRAY_WIDTH more.
WIDE, STRAY_WIDTH = 140, 40
_UUID = re.compile(r"([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def timeline_table(order_id: UUID, entries: list[TimelineEntry], width: int | None = None) -> Table:
    """The table for a console `width` columns wide: compact below WIDE, wide from it or when not given."""
    # When every event carries the order's correlation id, as it should, a column of it says nothing.
    strays = any(entry.correlation_id != order_id for entry in entries)
    if width is not None and width < WIDE + (STRAY_WIDTH if strays else 0):
        return compact_table(order_id, entries)
    days = sorted({entry.recorded_at.date() for entry in entries})
    # Most orders end within a second: the day goes in the title, unless the story spans days.
    time_format = "%H:%M:%S.%f" if len(days) == 1 else "%Y-%m-%d %H:%M:%S.%f"
    columns = [
        Column("time (UTC)", no_wrap=True),
        Column("stream", no_wrap=True),
        Column("v", justify="right"),
        Column("event", no_wrap=True),
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


def compact_table(order_id: UUID, entries: list[TimelineEntry]) -> Table:
    """Time and stream, event and summary, cause: the story in 80 columns."""
    days = sorted({entry.recorded_at.date().isoformat() for entry in entries})
    strays = any(entry.correlation_id != order_id for entry in entries)
    streams = list(dict.fromkeys((entry.stream, entry.stream_id) for entry in entries))
    # A stream is named by its kind, as causes name it, unless the story has two of that kind.
    shared = {kind for kind, _ in streams if sum(other == kind for other, _ in streams) > 1}
    table = Table(
        Column("time (UTC)\nstream", no_wrap=True),
        Column("event\nsummary", overflow="fold", ratio=1),
        Column("caused by", overflow="fold"),
        title=f"order {order_id}, {days[0]}" + (f" to {days[-1]}" if days[1:] else ""),
        caption="streams: " + ", ".join(f"{kind} {stream_id.hex[:8]}" for kind, stream_id in streams)
        + "; v: the event's version in its stream; caused by: the event whose message caused this one, else "
        "the causation id" + ("" if strays else "; every event's correlation id is the order's"),
        caption_justify="left",
    )
    for entry in entries:
        stream = f"{entry.stream} {entry.stream_id.hex[:8]}" if entry.stream in shared else entry.stream
        table.add_row(
            f"{entry.recorded_at.strftime('%H:%M:%S.%f')[:-3]}\n{stream} v{entry.version}",
            _event_and_summary(entry, None if entry.correlation_id == order_id else entry.correlation_id),
            _causation(entry),
            style=STYLES.get(entry.flag) if entry.flag else None,
        )
    return table


def _event_and_summary(entry: TimelineEntry, stray: UUID | None) -> Text:
    text = Text(entry.type + "\n")
    text.append(entry.summary)  # reasons are free text: never read them as markup
    if stray is not None:
        text.append(f"\ncorrelation {stray}", style="bold red")
    return text

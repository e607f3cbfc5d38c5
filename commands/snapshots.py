"""Snapshots taken from the aggregate in hand.

The library's `_take_snapshots` takes each snapshot through `take_snapshot`,
which reads the aggregate back from the store at the snapshot's version: the
last snapshot and up to an interval's worth of events, each decoded again. Just
after a save the application holds that aggregate already, at the version of
the last event the save recorded for it. When a save reaches one of an
aggregate's snapshotting intervals, the snapshot is taken from the aggregate
itself, as the library's own `Snapshot.take` would take it from the one it
reads back, at that version: the interval's, or a few past it when the same
save recorded more of its events (a Stock changed by several orders of one
batch). A snapshot is the aggregate as of its version, whichever that is; the
repository starts from the latest one at or below the version it is asked for.
An aggregate of a snapshotting projector, which rebuilds it its own way, is
left to the library.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent


def take_snapshots(app: Application[UUID], processing: ProcessingEvent[UUID]) -> None:
    """Snapshot every aggregate whose saved events reach one of its snapshotting intervals."""
    if app.snapshots is None or not app.snapshotting_intervals:
        return
    elsewhere = ProcessingEvent[UUID]()
    elsewhere.aggregates = processing.aggregates
    in_hand: dict[UUID, Any] = {}  # each aggregate's snapshot once, however many intervals the save crossed
    for event in processing.events:
        aggregate = processing.aggregates.get(event.originator_id)
        if aggregate is None:
            continue
        interval = app.snapshotting_intervals.get(type(aggregate))
        if interval is None or event.originator_version % interval != 0:
            continue
        snapshot_class = getattr(type(aggregate), "Snapshot", type(app).snapshot_class)
        if snapshot_class is not None and type(aggregate) not in app.snapshotting_projectors:
            in_hand[aggregate.id] = snapshot_class, aggregate
        else:
            elsewhere.events.append(event)
    if in_hand:
        app.snapshots.put([taking.take(aggregate) for taking, aggregate in in_hand.values()])
    if elsewhere.events:
        app._take_snapshots(elsewhere)  # the library's way, for what is not in hand

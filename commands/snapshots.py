"""Snapshots taken from the aggregate in hand.

The library's `_take_snapshots` takes each snapshot through `take_snapshot`,
which reads the aggregate back from the store at the snapshot's version: the
last snapshot and up to an interval's worth of events, each decoded again. Just
after a save the application holds that aggregate already, at that version
whenever the snapshot's event is its last: a Stock, snapshotted every hundred
events and changed by every order, was read back a hundred events at a time.
Such a snapshot is taken from the aggregate itself, as the library's own
`Snapshot.take` would take it from the one it reads back; any other (the
aggregate moved on in the same save, or a projector of the application's own
rebuilds it) is left to the library.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent


def take_snapshots(app: Application[UUID], processing: ProcessingEvent[UUID]) -> None:
    """Snapshot every aggregate whose saved events reach one of its snapshotting intervals."""
    if app.snapshots is None or not app.snapshotting_intervals:
        return
    elsewhere = ProcessingEvent[UUID]()
    elsewhere.aggregates = processing.aggregates
    for event in processing.events:
        aggregate = processing.aggregates.get(event.originator_id)
        if aggregate is None:
            continue
        interval = app.snapshotting_intervals.get(type(aggregate))
        if interval is None or event.originator_version % interval != 0:
            continue
        snapshot_class = getattr(type(aggregate), "Snapshot", type(app).snapshot_class)
        in_hand = aggregate.version == event.originator_version
        if in_hand and snapshot_class is not None and type(aggregate) not in app.snapshotting_projectors:
            app.snapshots.put([snapshot_class.take(aggregate)])
        else:
            elsewhere.events.append(event)
    if elsewhere.events:
        app._take_snapshots(elsewhere)  # the library's way, for what is not in hand

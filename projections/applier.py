"""Applying events to a projection: one batch, one transaction of the read store.

A projection's share of a batch is folded into its rows in memory; then the
changed rows, the events it had to park, and its new position commit together
(see `tracking`). An event the projection cannot apply (its `evolve` raises, or
it cannot even be decoded) is parked with the error and skipped; the rest of
the batch, and the batches after it, go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from projections import tracking
from projections.catalog import AnyProjection
from projections.changes import ChangeHub
from projections.facts import EventSource, Fact, decode
from projections.store import ReadStore, Tx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unreadable:
    """A stored event that could not even be decoded: parked by every projection that reads its topic."""

    application: str
    notification: Notification
    error: str

    @property
    def topic(self) -> str:
        return self.notification.topic

    @property
    def notification_id(self) -> int:
        return self.notification.id

    @property
    def originator_id(self) -> UUID:
        return UUID(str(self.notification.originator_id))

    @property
    def originator_version(self) -> int:
        return self.notification.originator_version


Item = Fact | Unreadable


def read_batch(
    app: EventSource, start: int, limit: int, topics: frozenset[str]
) -> tuple[int, int, list[Item]]:
    """The notifications after `start`: the last id read, how many were read, those of `topics` decoded."""
    notifications = app.recorder.select_notifications(start, limit, inclusive_of_start=False)
    items: list[Item] = []
    for notification in notifications:
        if notification.topic not in topics:
            continue
        try:
            items.append(decode(app.name, app.mapper, notification))
        except Exception as error:
            items.append(Unreadable(app.name, notification, f"{type(error).__name__}: {error}"))
    last = notifications[-1].id if notifications else start
    return last, len(notifications), items


@dataclass(frozen=True)
class Applied:
    orders: set[UUID]  # the orders whose rows changed
    parked: list[tracking.ProjectionFailure]


class Applier:
    """Applies a projection's share of a batch: rows, parked events and position in one transaction."""

    def __init__(self, store: ReadStore, hub: ChangeHub) -> None:
        self.store = store
        self.hub = hub

    async def apply(
        self, projection: AnyProjection, application: str, expected: int, last: int, items: Sequence[Item]
    ) -> bool:
        """False, and nothing written, if the position is no longer `expected` (someone else moved it)."""
        async with self.store.transaction() as tx:
            applied = await self.apply_in(tx, projection, application, expected, last, items)
        if applied is None:
            return False
        self.committed(applied)
        return True

    def committed(self, applied: Applied) -> None:
        """Report what a committed batch parked, and tell the watchers of the orders it changed."""
        for failure in applied.parked:
            log.error("projection %s parked %s #%d (%s): %s", failure.projection, failure.application_name,
                      failure.notification_id, failure.topic, failure.error)
        self.hub.announce(applied.orders)

    async def apply_in(
        self, tx: Tx, projection: AnyProjection, application: str, expected: int, last: int,
        items: Sequence[Item],
    ) -> Applied | None:
        """`apply` inside a transaction of the caller's, who calls `committed` after the commit."""
        claimed = await tracking.claim(
            tx, projection.tracking_name, projection.applications, application, expected,
            for_update=self.store.dialect.for_update,
        )
        if not claimed:
            return None
        mine = [i for i in items if i.topic in projection.topics]
        rows = await projection.load(tx, {k for k in (_key(projection, i) for i in mine) if k})
        changed, failures = fold(projection, rows, mine)
        await projection.save(tx, {key: rows[key] for key in changed})
        await tracking.park(tx, failures)
        await tracking.advance(tx, projection.tracking_name, application, last)
        orders = {o for o in (projection.order_of(rows[k]) for k in changed) if o is not None}
        return Applied(orders, failures)


def fold(
    projection: AnyProjection, rows: dict[UUID, Any], items: Sequence[Item]
) -> tuple[set[UUID], list[tracking.ProjectionFailure]]:
    """Fold the items into the rows in place; the keys changed, and the events that could not be applied."""
    changed: set[UUID] = set()
    failures: list[tracking.ProjectionFailure] = []
    for item in items:
        try:
            if isinstance(item, Unreadable):
                raise ValueError(item.error)
            key = projection.key(item)
            rows[key] = projection.evolve(rows.get(key), item)
            changed.add(key)
        except Exception as error:
            failures.append(_failure(projection, item, error))
    return changed, failures


def _key(projection: AnyProjection, item: Item) -> UUID | None:
    if isinstance(item, Unreadable):
        return None
    try:
        return projection.key(item)
    except Exception:
        return None  # fold() parks it


def _failure(projection: AnyProjection, item: Item, error: Exception) -> tracking.ProjectionFailure:
    return tracking.ProjectionFailure(
        projection=projection.tracking_name, application_name=item.application,
        notification_id=item.notification_id, topic=item.topic, originator_id=item.originator_id,
        originator_version=item.originator_version,
        error=str(error) if isinstance(item, Unreadable) else f"{type(error).__name__}: {error}",
        failed_at=tracking.now(),
    )

"""Applying events to a projection: one batch, one transaction of the read store.

A projection's share of a batch is folded into its rows in memory; then the
changed rows, the events it had to park, and its new position commit together
(see `tracking`). An event the projection cannot apply (its `evolve` raises, or
it cannot even be decoded) is parked with the error and skipped; the rest of
the batch, and the batches after it, go on.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from projections import tracking
from projections.catalog import AnyProjection
from projections.changes import ChangeHub
from projections.facts import EventSource, Fact, decode, have_keys_for
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


def decode_window(
    app: EventSource, notifications: Sequence[Notification], topics: frozenset[str]
) -> list[Item]:
    """The notifications of `topics` among a window its follower read, decoded."""
    chosen = [n for n in notifications if n.topic in topics]
    read = have_keys_for(app.mapper, chosen)
    return [_decoded(app, n, read.get(n.id)) for n in chosen]


def read_window(
    app: EventSource, start: int, stop: int, topics: frozenset[str], *, opening: bool = True
) -> list[Item]:
    """The notifications of `topics` after `start` up to `stop` inclusive, decoded.

    The store filters by topic, so a replay reads only what the projection
    reads. `stop` must not be past the application's last notification: its
    writers commit in the order of their ids, so none will appear below it later.
    Without `opening`, sealed personal fields are left sealed: no key is looked up.
    """
    notifications = app.recorder.select_notifications(
        start, max(stop - start, 1), stop=stop, topics=sorted(topics), inclusive_of_start=False
    )
    read = have_keys_for(app.mapper, notifications) if opening else {}
    return [_decoded(app, n, read.get(n.id), opening) for n in notifications]


def _decoded(
    app: EventSource, notification: Notification, read: dict[str, Any] | None, opening: bool = True
) -> Item:
    try:
        return decode(app.name, app.mapper, notification, read, opening=opening)
    except Exception as error:
        return Unreadable(app.name, notification, f"{type(error).__name__}: {error}")


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
        self, projection: AnyProjection, application: str, expected: int, last: int, items: Sequence[Item],
        rows: RowCache | None = None,
    ) -> bool:
        """False, and nothing written, if the position is no longer `expected` (someone else moved it)."""
        async with self.store.transaction() as tx:
            applied = await self.apply_in(tx, projection, application, expected, last, items, rows)
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
        items: Sequence[Item], cache: RowCache | None = None,
    ) -> Applied | None:
        """`apply` inside a transaction of the caller's, who calls `committed` after the commit.

        With a `cache`, rows found there are not read from the store, and the
        rows the batch changed are put there: for a writer that knows nobody
        else writes its table (a rebuild).
        """
        claimed = await tracking.claim(
            tx, projection.tracking_name, projection.applications, application, expected,
            for_update=self.store.dialect.for_update,
        )
        if not claimed:
            return None
        keyed = keyed_items(projection, items)
        keys = {k for k, _ in keyed if k is not None}
        if cache is None:
            rows = await projection.load(tx, keys)
        else:
            rows = cache.take(keys)
            rows |= await projection.load(tx, keys - rows.keys())
        changed, failures = fold(projection, rows, keyed)
        await projection.save(tx, {key: rows[key] for key in changed})
        if cache is not None:
            cache.keep(rows)
        await tracking.park(tx, failures)
        await tracking.advance(tx, projection.tracking_name, application, last)
        orders = {o for o in (projection.order_of(rows[k]) for k in changed) if o is not None}
        return Applied(orders, failures)


class RowCache:
    """The rows a writer last wrote, newest last, up to `size` of them.

    `dropped` counts the rows let go for want of room: while it is 0, every row
    the writer has written is here, and a key not here is in no table either.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows: dict[UUID, Any] = {}
        self.dropped = 0

    def take(self, keys: Iterable[UUID]) -> dict[UUID, Any]:
        """The cached rows of these keys, out of the cache (`keep` puts them back)."""
        return {k: self.rows.pop(k) for k in keys if k in self.rows}

    def keep(self, rows: Mapping[UUID, Any]) -> None:
        self.rows.update(rows)
        for key in list(itertools.islice(self.rows, max(0, len(self.rows) - self.size))):
            del self.rows[key]
            self.dropped += 1


def fold(
    projection: AnyProjection, rows: dict[UUID, Any], keyed: Sequence[tuple[UUID | None, Item]]
) -> tuple[set[UUID], list[tracking.ProjectionFailure]]:
    """Fold the items, each with its row's key (None where it has none), into the rows in place.

    The keys changed, and the events that could not be applied, in the order of the items.
    """
    if projection.folds_runs:
        return _fold_runs(projection, rows, keyed)
    changed: set[UUID] = set()
    failures: list[tracking.ProjectionFailure] = []
    for key, item in keyed:
        try:
            if isinstance(item, Unreadable):
                raise ValueError(item.error)
            if key is None:
                key = projection.key(item)  # raises: why it has none
            rows[key] = projection.evolve(rows.get(key), item)
            changed.add(key)
        except Exception as error:
            failures.append(_failure(projection, item, error))
    return changed, failures


def _fold_runs(
    projection: AnyProjection, rows: dict[UUID, Any], keyed: Sequence[tuple[UUID | None, Item]]
) -> tuple[set[UUID], list[tracking.ProjectionFailure]]:
    # `fold`, each row's facts handed to the projection as one run (`evolve_all`).
    runs: dict[UUID, list[Fact]] = {}
    failures: list[tracking.ProjectionFailure] = []
    for key, item in keyed:
        if isinstance(item, Unreadable):
            failures.append(_failure(projection, item, ValueError(item.error)))
            continue
        if key is None:
            try:
                key = projection.key(item)  # raises: why it has none
            except Exception as error:
                failures.append(_failure(projection, item, error))
                continue
        run = runs.get(key)
        if run is None:
            runs[key] = [item]
        else:
            run.append(item)
    changed: set[UUID] = set()
    for key, facts in runs.items():
        row, refused = projection.evolve_all(rows.get(key), facts)
        if len(refused) < len(facts):
            rows[key] = row
            changed.add(key)
        failures += [_failure(projection, fact, error) for fact, error in refused]
    if len(failures) > 1:
        failures.sort(key=lambda failure: failure.notification_id)  # the items' order
    return changed, failures


def keyed_items(projection: AnyProjection, items: Sequence[Item]) -> list[tuple[UUID | None, Item]]:
    """The items of the projection's topics, each with the key of its row (None where it has none)."""
    return [(_key(projection, i), i) for i in items if i.topic in projection.topics]


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

"""A unit of work: several messages handled in one transaction, and what it loads ahead of them.

Inside a unit of work a handler decides against the aggregates the unit has
already changed and records nothing; the application saves every event and
every tracking row at its end (`ContextApplication.unit_of_work`). Loading
ahead asks the store once for every aggregate the unit's messages will need.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import Cache
from eventsourcing.persistence import Mapper, StoredEvent, Tracking

from commands.following import have_keys_for
from domain.base import Aggregate, Cause

SelectAfter = Callable[[Mapping[UUID, int]], list[StoredEvent]]


@dataclass
class UnitOfWork:
    """What a batch of messages has decided so far, saved together at the end."""

    aggregates: dict[UUID, Aggregate] = field(default_factory=dict)
    trackings: list[Tracking] = field(default_factory=list)
    # Aggregates loaded for the batch ahead of its messages (None: no such aggregate).
    loaded: dict[UUID, Aggregate | None] = field(default_factory=dict)
    # Each message's line (its ids, what it was, what it decided), written once the batch is saved;
    # and how many of each aggregate's pending events an earlier message of the batch decided.
    handled: list[tuple[Cause, str, str]] = field(default_factory=list)
    told: dict[UUID, int] = field(default_factory=dict)

    def add(self, aggregates: Sequence[Aggregate], tracking: Tracking) -> None:
        for aggregate in aggregates:
            self.aggregates[aggregate.id] = aggregate
        self.trackings.append(tracking)


def load_ahead(
    unit: UnitOfWork, aggregate_ids: Iterable[UUID], select_after: SelectAfter, mapper: Mapper[UUID],
    cache: Cache[UUID, Any] | None, *, may_have_snapshots: Callable[[UUID], bool],
) -> None:
    """Load these aggregates for the unit's messages in one query.

    Each is the cached copy brought up to date with the events recorded since,
    or, for one not cached, its whole stream (none: it does not exist yet). One
    query instead of one per message, and one for the keys that open their sealed
    fields instead of one per person; anything not preloaded is loaded as usual.
    Streams that snapshots shorten are left to the repository when not cached.
    """
    start: dict[UUID, Aggregate | None] = {}
    for aggregate_id in aggregate_ids:
        if aggregate_id in unit.aggregates or aggregate_id in unit.loaded or aggregate_id in start:
            continue
        cached = _cached(cache, aggregate_id)
        if cached is None and may_have_snapshots(aggregate_id):
            continue
        start[aggregate_id] = copy.deepcopy(cached)
    if not start:
        return
    stored: list[StoredEvent] = select_after({i: a.version if a else 0 for i, a in start.items()})
    have_keys_for(mapper, stored)  # the keys of the persons whose sealed fields they hold, in one round trip
    for stored_event in stored:
        event: Any = mapper.to_domain_event(stored_event)
        start[event.originator_id] = event.mutate(start[event.originator_id])
    unit.loaded.update(start)


def _cached(cache: Cache[UUID, Any] | None, aggregate_id: UUID) -> Aggregate | None:
    if cache is None:
        return None
    try:
        aggregate: Aggregate = cache.get(aggregate_id)
    except KeyError:
        return None
    return aggregate


def decided(aggregates: Sequence[Aggregate], told: dict[UUID, int] | None = None) -> str:
    """What a message decided, for its log line: the events it left pending.

    In a batch, `told` counts each aggregate's pending events that earlier messages
    decided, so that each message's line names only its own.
    """
    names = []
    for aggregate in aggregates:
        pending = aggregate.pending_events
        if told is not None:
            pending, told[aggregate.id] = pending[told.get(aggregate.id, 0):], len(pending)
        names += [type(e).__qualname__ for e in pending]
    return f"recorded {', '.join(names)}" if names else "recorded nothing"

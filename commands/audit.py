"""Reading the record: any aggregate's stream event by event, and any aggregate as it was.

These read the event store itself, never a projection, so they show what was
decided and why (correlation and causation ids) even when a read model is wrong.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from commands.base import ContextApplication, TAggregate
from domain.base import DomainEvent, NotFoundError


class RecordedEvent(BaseModel):
    """One stored event as an auditor reads it."""

    model_config = ConfigDict(frozen=True)

    stream_id: UUID
    version: int
    type: str
    recorded_at: datetime
    correlation_id: UUID | None
    causation_id: str | None
    data: dict[str, Any]


_BOOKKEEPING = {
    "originator_id", "originator_version", "timestamp", "correlation_id", "causation_id",
    "originator_topic",
}


def history(
    app: ContextApplication,
    stream_id: UUID,
    *,
    from_version: int | None = None,
    to_version: int | None = None,
) -> list[RecordedEvent]:
    """The stream's events in order, between the given versions (both inclusive)."""
    gt = from_version - 1 if from_version is not None else None
    return [
        RecordedEvent(
            stream_id=event.originator_id,
            version=event.originator_version,
            type=type(event).__qualname__,
            recorded_at=event.timestamp,
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
            data=event.model_dump(mode="json", exclude=_BOOKKEEPING),
        )
        for event in _events(app, stream_id, gt=gt, lte=to_version)
    ]


def _events(
    app: ContextApplication, stream_id: UUID, *, gt: int | None = None, lte: int | None = None
) -> list[DomainEvent]:
    return [cast(DomainEvent, e) for e in app.events.get(stream_id, gt=gt, lte=lte)]


def as_of(
    app: ContextApplication,
    aggregate_id: UUID,
    cls: type[TAggregate],
    *,
    version: int | None = None,
    at: datetime | None = None,
) -> TAggregate:
    """The aggregate as it stood at a version, or at a moment (its last event at or before it)."""
    if at is not None:
        versions = [e.originator_version for e in _events(app, aggregate_id) if e.timestamp <= at]
        if not versions:
            raise NotFoundError(f"{aggregate_id} did not exist yet at {at.isoformat()}", field="at")
        version = versions[-1] if version is None else min(version, versions[-1])
    aggregate = app.find(aggregate_id, cls, version=version)
    if aggregate is None:
        raise NotFoundError(f"no {cls.__name__} {aggregate_id}", field="id")
    return aggregate

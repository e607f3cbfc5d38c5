"""The operator's views: stored events for audits, parked messages, and how far projections have got."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from commands.audit.timeline import RecordedEvent as RecordedEventModel
from projections.read_model import ParkedMessage, ProjectionStatusRow
from read_api.cursor import encode_event_cursor


@strawberry.type(description="One stored event, read from the event store itself")
class RecordedEvent:
    stream_id: strawberry.ID
    version: int
    type: str
    recorded_at: datetime
    correlation_id: strawberry.ID | None = strawberry.field(description="The order the saga is about")
    causation_id: strawberry.ID | None = strawberry.field(description="The command or message behind it")
    data: JSON
    cursor: str = strawberry.field(description=(
        "Opaque: `events(streamId, after: <cursor>)` reads the stream's events after this one, so the "
        "last event's cursor is where the next page begins; a page shorter than `first` is the last"))

    @classmethod
    def from_model(cls, event: RecordedEventModel) -> RecordedEvent:
        data: Any = event.data
        return cls(
            stream_id=strawberry.ID(str(event.stream_id)), version=event.version, type=event.type,
            recorded_at=event.recorded_at,
            correlation_id=None if event.correlation_id is None else strawberry.ID(str(event.correlation_id)),
            causation_id=None if event.causation_id is None else strawberry.ID(event.causation_id),
            data=data, cursor=encode_event_cursor(event.stream_id, event.version),
        )


@strawberry.type(description="A message parked after its last attempt, with its error")
class DeadLetter:
    id: strawberry.ID
    queue: str
    message_type: str
    error: str
    attempts: int
    parked_at: datetime

    @classmethod
    def from_row(cls, row: ParkedMessage) -> DeadLetter:
        return cls(
            id=strawberry.ID(row.id), queue=row.queue, message_type=row.message_type, error=row.error,
            attempts=row.attempts, parked_at=row.parked_at,
        )


@strawberry.type(description="How far a projection has followed the event stores")
class ProjectionStatus:
    name: str
    position: int
    lag: int = strawberry.field(description="Events recorded but not yet applied")
    failed: int = strawberry.field(description="Events it could not apply: parked and reported")

    @classmethod
    def from_row(cls, row: ProjectionStatusRow) -> ProjectionStatus:
        return cls(name=row.name, position=row.position, lag=row.lag, failed=row.failed)

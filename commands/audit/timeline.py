"""Reading the record: any aggregate's stream event by event, any aggregate as it was,
and the whole story of one order across every stream it touched.

These read the event store itself, never a projection, so they show what was
decided and why (correlation and causation ids) even when a read model is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from commands.audit.summaries import Flag, flag_of, summarise
from commands.base import ContextApplication, TAggregate
from commands.orders import OrderNotFoundError
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
    limit: int | None = None,
) -> list[RecordedEvent]:
    """The stream's events in order, between the given versions (both inclusive), at most `limit` of them.

    The store reads only those events, so a page of a long stream costs its own length.
    """
    gt = from_version - 1 if from_version is not None else None
    return [
        RecordedEvent(
            stream_id=event.originator_id,
            version=event.originator_version,
            type=type(event).__qualname__,
            recorded_at=event.timestamp,
            correlation_id=event.correlation_id,
            causation_id=event.causation_id,
            data=_data(event),
        )
        for event in _events(app, stream_id, gt=gt, lte=to_version, limit=limit)
    ]


def _data(event: DomainEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude=_BOOKKEEPING)


def _events(
    app: ContextApplication, stream_id: UUID, *, gt: int | None = None, lte: int | None = None,
    limit: int | None = None,
) -> list[DomainEvent]:
    return [cast(DomainEvent, e) for e in app.events.get(stream_id, gt=gt, lte=lte, limit=limit)]


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


class StreamLocation(NamedTuple):
    """The application that holds a stream, and the aggregate the stream belongs to."""

    application: ContextApplication
    aggregate: str  # the aggregate class name, e.g. "Payment", "OrderFulfillment"


def find_stream(system: Iterable[ContextApplication], stream_id: UUID) -> StreamLocation | None:
    """Which of the system's applications holds the stream, or None if none does.

    A stream id alone does not say which context it belongs to; each store is asked
    for the stream's first event, one indexed read per application at most.
    """
    for app in system:
        first = app.recorder.select_events(stream_id, limit=1)
        if first:
            qualname = first[0].topic.rpartition(":")[2]
            return StreamLocation(app, qualname.partition(".")[0])
    return None


class StreamRef(BaseModel):
    """An event's place: which of the order's streams, at which version."""

    model_config = ConfigDict(frozen=True)

    stream: str
    stream_id: UUID
    version: int


class TimelineEntry(RecordedEvent):
    """One event of an order's story, placed among the events of all its streams.

    `cause` is the event of the same timeline whose message caused this one: the saga
    decision that carried a context's command, or the context's event that the saga
    heard. It is None where the cause is no event of the order's streams: a client's
    command (the placement, a cancellation) or a saga deadline.
    """

    stream: str  # order, payment, reservation, shipment, notification or saga
    summary: str
    flag: Flag | None
    cause: StreamRef | None


@dataclass(frozen=True)
class _Read:
    rank: int  # the stream's place in the story, to order events recorded at the same instant
    ref: StreamRef
    event: DomainEvent


def timeline(system: Iterable[ContextApplication], order_id: UUID) -> list[TimelineEntry]:
    """Every event of the order's whole story, merged in recorded order.

    `system` gives every context's application and the saga's (`infra.bootstrap.System`
    iterates them); each names its streams about the order (`order_streams`). The Stock events
    of the order are not included: they lie in each product's stream among every
    other order's, with no index by order, while the order's Reservation, saved in the
    same transactions, records the same moves. Ordered by timestamp, then stream, then
    version: a message is recorded after the event that sent it, so causes come first.
    """
    apps = list(system)
    read = _read_streams(apps, order_id)
    if not any(r.ref.stream_id == order_id for r in read):
        raise OrderNotFoundError(f"no order {order_id}", field="order_id")
    read.sort(key=lambda r: (r.event.timestamp, r.rank, r.event.originator_version))
    causes = _Causes(apps, read)
    return [_entry(r, causes.of(r.event.causation_id)) for r in read]


def _read_streams(apps: Sequence[ContextApplication], order_id: UUID) -> list[_Read]:
    streams = [(app, kind, stream_id) for app in apps
               for kind, stream_id in app.order_streams(order_id).items()]
    return [
        _Read(rank, StreamRef(stream=kind, stream_id=stream_id, version=event.originator_version), event)
        for rank, (app, kind, stream_id) in enumerate(streams)
        for event in _events(app, stream_id)
    ]


def _entry(read: _Read, cause: StreamRef | None) -> TimelineEntry:
    event, event_type = read.event, type(read.event).__qualname__
    data = _data(event)
    return TimelineEntry(
        stream=read.ref.stream,
        stream_id=event.originator_id,
        version=event.originator_version,
        type=event_type,
        recorded_at=event.timestamp,
        correlation_id=event.correlation_id,
        causation_id=event.causation_id,
        data=data,
        summary=summarise(event_type, data),
        flag=flag_of(event_type),
        cause=cause,
    )


class _Causes:
    """Finds the event a causation id names, among the timeline's own events.

    A context records a command's events as caused by `command:<command id>`, the id
    of the command a saga decision carried. The saga records what it decides on hearing
    an event as caused by `<application>:<position>`, the event's place in that
    application's notification log: one indexed read finds which event it was.
    """

    def __init__(self, apps: Sequence[ContextApplication], read: Sequence[_Read]) -> None:
        self._apps = {app.name: app for app in apps}
        self._refs = {(r.ref.stream_id, r.ref.version): r.ref for r in read}
        self._found: dict[str, StreamRef | None] = {
            f"command:{command.command_id}": r.ref
            for r in read
            if (command := getattr(r.event, "command", None)) is not None
        }

    def of(self, causation_id: str | None) -> StreamRef | None:
        if causation_id is None:
            return None
        if causation_id not in self._found:
            self._found[causation_id] = self._notified(causation_id)
        return self._found[causation_id]

    def _notified(self, causation_id: str) -> StreamRef | None:
        name, _, position = causation_id.rpartition(":")
        app = self._apps.get(name)
        if app is None or not position.isdigit():
            return None
        found = app.process_recorder.select_notifications(int(position), 1, stop=int(position))
        if not found:
            return None
        return self._refs.get((UUID(str(found[0].originator_id)), found[0].originator_version))

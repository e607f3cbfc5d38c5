"""Stored events as the projections read them: topic, position and JSON state.

Projections read the stored JSON rather than rebuilding each pydantic domain
event: validating an `Order.Placed` costs tens of microseconds, the JSON is
already what a row needs, and a replay decodes every event ever recorded. An
event stored by an older class version is the exception: it is upcast by the
application's own mapper first, so a projection only ever sees current shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import get_topic, resolve_topic


class NotificationLog(Protocol):
    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (),
        *, inclusive_of_start: bool = True,
    ) -> Sequence[Notification]: ...

    def max_notification_id(self) -> int | None: ...


class Follower(Protocol):
    """A follower of one application's log as the projector uses it (`commands.following.LogFollower`)."""

    def read(self, after: int, *, stop: int | None = None) -> Sequence[Notification]: ...

    def wake(self) -> None: ...

    def follow(
        self, step: Callable[[], Awaitable[int]], stopping: asyncio.Event | None = None
    ) -> Awaitable[None]: ...


class EventSource(Protocol):
    """An event-sourced application as the projector follows it (`ContextApplication` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def recorder(self) -> Any: ...

    @property
    def mapper(self) -> Mapper[UUID]: ...

    def follower(
        self, *, window: int = ..., topics: Sequence[str] = (), poll_interval: float = ...
    ) -> Follower:
        """A follower of its notification log, woken by its saves in this process."""
        ...


class Fact(NamedTuple):
    """One stored event: where it sits in its application's log, and what it says.

    A named tuple rather than a frozen dataclass: a replay makes one per event, a
    million of them, and a tuple is built at a quarter of a frozen dataclass's cost.
    """

    application: str
    notification_id: int
    originator_id: UUID
    originator_version: int
    topic: str  # the stored topic, "domain.order:Order.Placed"
    timestamp: datetime
    data: Mapping[str, Any]

    @property
    def name(self) -> str:
        """The event's class name without its aggregate: "Placed"."""
        return _event_name(self.topic)


@functools.cache
def _event_name(topic: str) -> str:
    # Cached by topic: a replay asks each of its million facts, and there are a few dozen topics.
    return topic.rsplit(".", 1)[-1]


def decode(
    application: str, mapper: Mapper[UUID], notification: Notification, read: dict[str, Any] | None = None,
    *, opening: bool = True,
) -> Fact:
    """The notification as a fact. `read`: its stored state, decoded already by `have_keys_for`.

    Without `opening`, its sealed personal fields stay as stored: for a reader that never reads them.
    """
    if read is None:
        state = _stored_state(mapper, notification, opening)
    else:
        state = _opened(mapper, notification, read) if opening else read
    stored_version = state.pop("class_version", 1)
    if stored_version != _class_version(notification.topic):
        # An older shape: let the application's upcasters bring it up to date.
        event: Any = mapper.to_domain_event(notification)
        state = event.model_dump(mode="json", exclude={"originator_id", "originator_version"})
    stream = notification.originator_id
    return Fact(
        application, notification.id, stream if isinstance(stream, UUID) else UUID(stream),
        notification.originator_version, notification.topic, datetime.fromisoformat(state["timestamp"]),
        state,
    )


@functools.cache
def _class_version(topic: str) -> int:
    # Cached: asking a pydantic model class for an attribute it lacks costs microseconds, every event.
    version: int = getattr(resolve_topic(topic), "class_version", 1)
    return version


def have_keys_for(mapper: Mapper[UUID], window: Sequence[Notification]) -> dict[int, dict[str, Any]]:
    """Before decoding a window: the keys of every person whose sealed fields it holds, in one round trip.

    Returns the states it decoded to find those persons, by notification id, for `decode`
    to open rather than decode again. (The write side's `commands.following.have_keys_for`,
    which the read side may not import.)
    """
    personal: RevealsPersonalData | None = getattr(mapper, "personal", None)
    if personal is None:
        return {}
    holding: dict[int, dict[str, Any]] = {}
    subjects_in: list[tuple[str, dict[str, Any]]] = []  # (topic, state): where load_for finds each person
    for notification in window:
        if not personal.declares(notification.topic):
            continue
        data = _plain(mapper, notification)
        if not personal.may_hold_sealed(data):
            continue
        with contextlib.suppress(ValueError):  # an undecodable event is parked when it is decoded
            state = holding[notification.id] = _object(mapper, notification.topic, data)
            subjects_in.append((notification.topic, state))
    if subjects_in:
        personal.load_for(subjects_in)
    return holding


def _plain(mapper: Mapper[UUID], notification: Notification) -> bytes:
    # The read side does not import the persistence wiring, so it undoes the mapper's layers itself.
    data = notification.state
    if mapper.cipher:
        data = mapper.cipher.decrypt(data)
    if mapper.compressor:
        data = mapper.compressor.decompress(data)
    return data


def _object(mapper: Mapper[UUID], topic: str, data: bytes) -> dict[str, Any]:
    decoded = mapper.transcoder.decode(data)
    if not isinstance(decoded, dict):
        raise ValueError(f"stored state of {topic} is not an object")
    state: dict[str, Any] = decoded
    return state


def _stored_state(mapper: Mapper[UUID], notification: Notification, opening: bool = True) -> dict[str, Any]:
    data = _plain(mapper, notification)
    state = _object(mapper, notification.topic, data)
    personal: RevealsPersonalData | None = getattr(mapper, "personal", None) if opening else None
    # Only the topics that declare personal fields are sealed: the others are not searched for seals.
    if personal is not None and _declares(personal, notification.topic) and personal.may_hold_sealed(data):
        state = _opened(mapper, notification, state)
    return state


@functools.cache
def _declares(personal: RevealsPersonalData, topic: str) -> bool:
    # Asking a store's keys costs more than searching a short event for a seal: once a topic.
    return personal.declares(topic)


def _opened(mapper: Mapper[UUID], notification: Notification, state: dict[str, Any]) -> dict[str, Any]:
    """Personal fields sealed with their person's key: opened, or erased once the person is forgotten."""
    personal: RevealsPersonalData | None = getattr(mapper, "personal", None)
    if personal is None:
        return state
    return personal.reveal(notification.topic, notification.originator_id, state)


class RevealsPersonalData(Protocol):
    """What opens the personal fields of stored events (the event store's mapper keeps one)."""

    def reveal(self, topic: str, stream_id: UUID | str, state: dict[str, Any]) -> dict[str, Any]: ...

    def declares(self, topic: str) -> bool: ...

    def may_hold_sealed(self, data: bytes) -> bool: ...

    def load_for(self, stored: Iterable[tuple[str, dict[str, Any]]]) -> None: ...

    def __hash__(self) -> int: ...


def fact_of(event: Any, application: str, notification_id: int) -> Fact:
    """A pydantic domain event as the projections would read it back from the store."""
    data = event.model_dump(mode="json", exclude={"originator_id", "originator_version"})
    return Fact(
        application=application,
        notification_id=notification_id,
        originator_id=event.originator_id,
        originator_version=event.originator_version,
        topic=get_topic(type(event)),
        timestamp=event.timestamp,
        data=data,
    )

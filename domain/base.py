"""The aggregate and event base classes every context builds on.

Events are frozen pydantic models, so each event's schema is written once and
validated on the way in and out of the store. Every event also carries the
correlation id (the order the whole saga is about) and the causation id (the
message or command that caused it), taken from the ambient `caused_by` context
so aggregates never have to thread them through their methods.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID, uuid4

from eventsourcing.domain import BaseAggregate, CanInitAggregate, CanMutateAggregate
from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class Cause:
    """Why events are being recorded: the saga they belong to and the message behind them."""

    correlation_id: UUID | None = None
    causation_id: str | None = None


A = TypeVar("A", bound=BaseAggregate[Any])
F = TypeVar("F", bound=Callable[..., UUID])

IDS_KEPT = 16_384
"""How many recent answers each `kept_ids` function keeps."""


def kept_ids(create_id: F) -> F:
    """A deterministic id function (uuid5 of a name) that keeps its recent answers.

    A saga's message asks for the same few ids many times over (its saga's, its
    order's, its command's); each uuid5 formats a name and hashes it with SHA-1.
    """
    return functools.lru_cache(maxsize=IDS_KEPT)(create_id)  # type: ignore[return-value]


_NO_CAUSE = Cause()
_current_cause: ContextVar[Cause] = ContextVar("current_cause")


@contextmanager
def caused_by(correlation_id: UUID | None, causation_id: str | None) -> Iterator[Cause]:
    """Stamp every event triggered inside the block with these ids."""
    cause = Cause(correlation_id, causation_id)
    token = _current_cause.set(cause)
    try:
        yield cause
    finally:
        _current_cause.reset(token)


def current_cause() -> Cause:
    return _current_cause.get(_NO_CAUSE)


class DomainEvent(BaseModel):
    """An immutable fact about one aggregate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    correlation_id: UUID | None = None
    causation_id: str | None = None


def _with_cause(kwargs: dict[str, Any]) -> dict[str, Any]:
    cause = _current_cause.get(_NO_CAUSE)
    kwargs.setdefault("correlation_id", cause.correlation_id)
    kwargs.setdefault("causation_id", cause.causation_id)
    return kwargs


class Aggregate(BaseAggregate[UUID]):
    """Base aggregate with a UUID id and pydantic events."""

    @staticmethod
    def create_id(*_: Any, **__: Any) -> UUID:
        return uuid4()

    class Event(DomainEvent, CanMutateAggregate[UUID]):
        pass

    class Created(Event, CanInitAggregate[UUID]):
        originator_topic: str

    @classmethod
    def _create(
        cls,
        event_class: type[CanInitAggregate[UUID]],
        *,
        id: UUID | None = None,
        **kwargs: Any,
    ) -> Any:
        return super()._create(event_class, id=id, **_with_cause(kwargs))

    def trigger_event(
        self,
        event_class: type[CanMutateAggregate[UUID]],
        **kwargs: Any,
    ) -> None:
        super().trigger_event(event_class, **_with_cause(kwargs))

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        """The copy a command works on, taken from the repository's cache.

        Aggregates hold immutable values (frozen models, enums, Decimals, UUIDs)
        and change by assigning new ones; only their plain containers (a Stock's
        reservations, the pending events) change in place. Copying those one
        level deep is enough, and spares the cost of a generic deep copy on every
        load of a hot aggregate.
        """
        clone = object.__new__(type(self))
        clone.__dict__.update(
            (name, value.copy() if type(value) in _CONTAINERS else value)
            for name, value in self.__dict__.items()
        )
        return clone


_CONTAINERS = (dict, list, set)


class OpensOrFollows(Aggregate.Created):
    """An event that may start an aggregate's history or follow earlier events.

    A compensation can arrive before the action it undoes; the aggregate is then
    opened by the compensation, and the late action's outcome follows it.
    """

    def mutate(self, aggregate: A | None) -> A | None:
        if aggregate is None:
            return CanInitAggregate.mutate(self, None)
        return CanMutateAggregate.mutate(self, aggregate)

    @staticmethod
    def topic_of(aggregate: object) -> str:
        """The originator topic a follow-up repeats, written as the library writes it."""
        return f"{type(aggregate).__module__}:{type(aggregate).__qualname__}"


class DomainError(Exception):
    """A rule of the domain refused a request. `code` is stable; `field` names the input at fault."""

    code: ClassVar[str] = "DOMAIN_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(DomainError):
    """An input is malformed or out of range."""

    code = "VALIDATION_ERROR"


class NotFoundError(DomainError):
    code = "NOT_FOUND"


class InvalidStateError(DomainError):
    """The aggregate's status does not allow the request."""

    code = "INVALID_STATE"

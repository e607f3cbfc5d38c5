"""Given/when/then over events, for aggregates and for whole context applications.

    given(ev(Order.Placed, ...)).when(lambda order: order.cancel("x")).then(
        ev(Order.Cancelled, reason="x"))
    given(ev(Stock.Listed, id=p, ...), app=inventory).when(ReserveStock(...)).then(
        ev(Stock.Reserved, id=p, ...))

`ev` names an event by its class and the fields that matter; ids, versions and
timestamps are filled in when given and ignored when expected unless named.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.base import ContextApplication
from commands.command import Command
from domain.base import Aggregate, DomainEvent


class ev:
    """An event named by class and the fields a scenario cares about."""

    def __init__(self, cls: type[Any], id: UUID | None = None, **fields: Any) -> None:
        self.cls = cls
        self.id = id
        self.fields = fields

    def matches(self, actual: Any) -> bool:
        if type(actual) is not self.cls:
            return False
        if self.id is not None and actual.originator_id != self.id:
            return False
        return all(getattr(actual, k) == v for k, v in self.fields.items())

    def __repr__(self) -> str:
        name = self.cls.__qualname__
        args = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
        return f"ev({name}{', id=' + str(self.id) if self.id else ''}{', ' if args else ''}{args})"


def owner_topic(event_cls: type[Any]) -> str:
    owner = event_cls.__qualname__.rsplit(".", 1)[0]
    return f"{event_cls.__module__}:{owner}"


def materialise(specs: tuple[ev | DomainEvent, ...], default_id: UUID) -> list[Any]:
    versions: dict[UUID, int] = {}
    events = []
    for spec in specs:
        if isinstance(spec, DomainEvent):
            events.append(spec)
            versions[spec.originator_id] = spec.originator_version
            continue
        originator_id = spec.id or default_id
        version = versions.get(originator_id, 0) + 1
        versions[originator_id] = version
        extra: dict[str, Any] = {}
        if "originator_topic" in spec.cls.model_fields:
            extra["originator_topic"] = owner_topic(spec.cls)
        events.append(
            spec.cls(
                originator_id=originator_id,
                originator_version=version,
                timestamp=datetime.now(UTC),
                **extra,
                **spec.fields,
            )
        )
    return events


class given:
    """Past events, for one aggregate or, with `app=`, in a context application's store."""

    def __init__(self, *history: ev | DomainEvent, app: ContextApplication | None = None) -> None:
        self.aggregate_id = uuid4()
        self.events = materialise(history, self.aggregate_id)
        self.app = app

    def aggregate(self) -> Aggregate:
        aggregate: Any = None
        for event in self.events:
            aggregate = event.mutate(aggregate)
        assert isinstance(aggregate, Aggregate), "given() needs a creation event first"
        return aggregate

    def when(self, action: Command | Callable[[Any], object]) -> Outcome:
        if isinstance(action, Command):
            return self._when_command(action)
        aggregate = self.aggregate() if self.events else None
        try:
            result = action(aggregate)
        except Exception as error:
            return Outcome([], error, None)
        produced = result if isinstance(result, Aggregate) else aggregate
        new = list(produced.collect_events()) if produced is not None else []
        return Outcome(new, None, result)

    def _when_command(self, command: Command) -> Outcome:
        assert self.app is not None, "a command needs given(..., app=...)"
        if self.events:
            self.app.events.put(self.events)
        before = self.app.recorder.max_notification_id() or 0
        result: Any = None
        failure: Exception | None = None
        try:
            result = self.app.handle(command)
        except Exception as error:
            failure = error
        after = self.app.recorder.select_notifications(before, 10_000, inclusive_of_start=False)
        new = [self.app.mapper.to_domain_event(n) for n in after]
        return Outcome(new, failure, result)


class Outcome:
    def __init__(self, events: list[Any], error: Exception | None, result: Any) -> None:
        self.events = events
        self.error = error
        self.result = result

    def then(self, *expected: ev) -> Outcome:
        if self.error is not None:
            raise AssertionError(f"expected events, but it raised {self.error!r}") from self.error
        assert len(self.events) == len(expected), _mismatch(expected, self.events)
        for want, got in zip(expected, self.events, strict=True):
            assert want.matches(got), _mismatch(expected, self.events)
        return self

    def then_nothing(self) -> Outcome:
        return self.then()

    def raises(self, error_type: type[Exception], *, field: str | None = None) -> Outcome:
        if self.error is None:
            pytest.fail(f"expected {error_type.__name__}, but it recorded {self.events}")
        assert isinstance(self.error, error_type), f"raised {self.error!r}"
        if field is not None:
            assert getattr(self.error, "field", None) == field, (
                f"error names field {getattr(self.error, 'field', None)!r}, not {field!r}"
            )
        assert self.events == [], f"a refused command recorded {self.events}"
        return self


def _mismatch(expected: tuple[ev, ...], actual: list[Any]) -> str:
    shown = "\n  ".join(repr(e) for e in actual) or "(none)"
    wanted = "\n  ".join(repr(e) for e in expected) or "(none)"
    return f"expected:\n  {wanted}\nrecorded:\n  {shown}"


"""The application every context builds on: it handles each command exactly once.

A command is handled exactly once: the application records the command id in
its tracking table in the same transaction as the events the command produced,
so a repeated command is recognised and changes nothing. Two writers of one
aggregate version conflict on the store's primary key; the handler then reloads
and decides again, at once: a conflict means the other writer has committed,
so deciding again makes progress, and nothing sleeps on a worker thread. After
`max_conflict_retries` the command fails with `ConcurrencyError`, which its
caller tries again later with backoff, on its event loop (the consumers through
the bus's retry queue, the API with stamina).

A batch of messages handled in one transaction is a unit of work
(`commands.unit_of_work`, which also loads ahead what the batch needs); the
application's log is read through its followers (`commands.following`).

About 300 lines, as one class: dispatching, handling exactly once and batching
all decide through the same loading and saving, which the library's
`Application` keeps on one object; the parts that stand alone are modules of
their own (`command`, `unit_of_work`, `following`, `personal_data`, `snapshots`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, ProcessRecorder, Recording, Tracking

from commands.command import Command, ConcurrencyError
from commands.following import Followers, LogFollower
from commands.personal_data import have_keys_to_seal
from commands.snapshots import take_snapshots
from commands.unit_of_work import UnitOfWork, decided, load_ahead
from domain.base import Aggregate, DomainError, caused_by

H = TypeVar("H", bound=Callable[..., Any])
TAggregate = TypeVar("TAggregate", bound=Aggregate)


class ContextApplication(Application[UUID]):
    """An eventsourcing application for one bounded context, with exactly-once commands."""

    max_conflict_retries: ClassVar[int] = 20
    # The level of the one line per message saying what became of it (recorded, a repeat, refused).
    handled_log_level: ClassVar[int] = logging.INFO
    handlers: ClassVar[dict[type[Command], str]] = {}
    # Whether persons' data enters the system here, most of them new: a person with no key at
    # hand gets a new one at once, rather than after asking the key table (`infra.eventstore.privacy`).
    personal_data_enters: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handlers = {
            member.__handles__: attr
            for klass in reversed(cls.__mro__)
            for attr, member in vars(klass).items()
            if hasattr(member, "__handles__")
        }

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self._followers = Followers()  # this process's readers of the log
        # Each context logs under its own module's name (commands.payments, ...).
        self.logger = logging.getLogger(type(self).__module__)
        self._unit_of_work: ContextVar[UnitOfWork] = ContextVar(f"unit_of_work_{id(self)}")

    def follower(
        self, *, window: int = 500, topics: Sequence[str] = (), poll_interval: float = 1.0,
        woken_by_saves: bool = True,
    ) -> LogFollower:
        """A follower of this application's notification log (`commands.following`).

        It is woken by every save in this process, and by `heard_of_save`, unless
        `woken_by_saves` is False: for a reader that keeps time rather than up with
        the log (the deadlines). Either way, a follower of the whole log is handed
        what this process's saves commit, for its next read (`LogFollower.offer`).
        """
        follower = LogFollower(self.process_recorder, window=window, topics=topics,
                               poll_interval=poll_interval)
        return self._followers.add(follower, woken_by_saves=woken_by_saves)

    def heard_of_save(self, upto: int | None = None) -> None:
        """Wake this process's followers of the log: a save up to `upto` if known (infra: NOTIFY)."""
        self._followers.wake(upto)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        # The library calls this after every save in this process, once the save has committed.
        if recordings:
            self._followers.saved([recording.notification for recording in recordings])

    def handle(self, command: Command) -> Any:
        """Dispatch a command to the method marked `@handles(type(command))`."""
        try:
            method_name = self.handlers[type(command)]
        except KeyError:
            raise TypeError(f"{self.name} does not handle {type(command).__name__}") from None
        return getattr(self, method_name)(command)

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    @property
    def process_recorder(self) -> ProcessRecorder:
        assert isinstance(self.recorder, ProcessRecorder)
        return self.recorder

    def execute(
        self, command: Command, decide: Callable[[], Sequence[Aggregate]], *,
        correlation_id: UUID | None = None,
    ) -> bool:
        """Run `decide` and save the aggregates it returns with the command's tracking row.

        Returns False when the command had already been handled (nothing changes).
        `decide` reloads what it needs on every call: it runs again after a conflict.
        """
        return self.execute_once(
            Tracking(command.tracking_name, 1), decide,
            correlation_id=correlation_id or command.correlation_id,
            causation_id=command.tracking_name, message=type(command).__name__,
        )

    def execute_once(
        self,
        tracking: Tracking,
        decide: Callable[[], Sequence[Aggregate]],
        *,
        correlation_id: UUID | None,
        causation_id: str,
        message: str = "a message",
    ) -> bool:
        """Exactly once per tracking row: decide, then save the events with the row.

        One line at `handled_log_level`, carrying the ids, says what became of the
        `message` (a name for the log): what it recorded, that it was a repeat, or
        that it was refused. In a batch the line is written once the batch is saved.
        """
        unit = self._unit_of_work.get(None)
        with caused_by(correlation_id, causation_id) as cause:
            if unit is not None:
                aggregates = decide()
                if self.logger.isEnabledFor(self.handled_log_level):
                    unit.handled.append((cause, message, self._event_names(aggregates, unit.told)))
                unit.add(aggregates, tracking)
                return True
            return self._decide_and_record(tracking, decide, message)

    def _decide_and_record(
        self, tracking: Tracking, decide: Callable[[], Sequence[Aggregate]], message: str
    ) -> bool:
        for _ in range(self.max_conflict_retries):
            try:
                aggregates = decide()
            except DomainError as error:
                # A repeat of a message that already changed things may now be refused.
                if self.has_tracked(tracking):
                    self._log_handled(message, "a repeat, already handled")
                    return False
                self._log_handled(message, f"refused, {error.code}: {error.message}")
                raise
            events = self._event_names(aggregates)  # recording takes the pending events
            try:
                self.record(aggregates, tracking)
            except IntegrityError:
                # The tracking row makes a repeat collide too, so ask which it was.
                if self.has_tracked(tracking):
                    self._log_handled(message, "a repeat, already handled")
                    return False
                continue  # another writer moved an aggregate on: decide again
            self._log_handled(message, events)
            return True
        raise ConcurrencyError(f"gave up after {self.max_conflict_retries} conflicting writes")

    def _log_handled(self, message: str, outcome: str) -> None:
        self.logger.log(self.handled_log_level, "%s handled %s: %s", self.name, message, outcome)

    def _event_names(self, aggregates: Sequence[Aggregate], told: dict[UUID, int] | None = None) -> str:
        """What a message decided, for its log line (empty when nobody reads it)."""
        if not self.logger.isEnabledFor(self.handled_log_level):
            return ""
        return decided(aggregates, told)

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """Handle several messages in one transaction.

        Inside the block, handlers decide against the aggregates the block has
        already changed and record nothing; at its end every event and every
        tracking row is saved at once. If the block raises, nothing is saved:
        the caller handles the messages one by one instead.
        """
        unit = UnitOfWork()
        token = self._unit_of_work.set(unit)
        try:
            yield unit
        finally:
            self._unit_of_work.reset(token)
        self.record(list(unit.aggregates.values()), None, trackings=unit.trackings)
        for cause, message, outcome in unit.handled:
            with caused_by(cause.correlation_id, cause.causation_id):
                self._log_handled(message, outcome)
        cache = self.repository.cache
        if cache is not None:
            # The batch's aggregates as they now are in the store: the next batch's
            # preload asks only for what was recorded after them.
            for aggregate in (*unit.loaded.values(), *unit.aggregates.values()):
                if aggregate is not None:
                    cache.put(aggregate.id, aggregate)

    def preload(self, aggregate_ids: Iterable[UUID]) -> None:
        """Inside a unit of work: load these aggregates for its messages in one query (`load_ahead`)."""
        unit = self._unit_of_work.get(None)
        select_after = getattr(self.recorder, "select_events_after", None)
        if unit is not None and select_after is not None:
            load_ahead(unit, aggregate_ids, select_after, self.mapper, self.repository.cache,
                       may_have_snapshots=self.may_have_snapshots)

    def has_handled(self, command: Command) -> bool:
        return self.has_tracked(Tracking(command.tracking_name, 1))

    def has_tracked(self, tracking: Tracking) -> bool:
        return self.process_recorder.has_tracking_id(
            tracking.application_name, tracking.notification_id
        )

    def record(
        self,
        aggregates: Sequence[Aggregate],
        tracking: Tracking | None,
        *,
        trackings: Sequence[Tracking] = (),
    ) -> None:
        """Save the aggregates' pending events and the tracking rows in one transaction.

        As the library's own `save` does: the keyword arguments reach the recorder,
        whose `trackings` are written with the events (infra/eventstore/recorders.py).
        """
        rows = [*trackings, tracking] if tracking is not None else list(trackings)
        have_keys_to_seal(self.mapper, aggregates, asks_first=not self.personal_data_enters)
        # The library's `save` less its protocol checks of each object (a twentieth of a worker's CPU).
        processing = ProcessingEvent[UUID]()
        for aggregate in aggregates:
            processing.events.extend(aggregate.collect_events())
            processing.aggregates[aggregate.id] = aggregate
        processing.saved_kwargs["trackings"] = rows
        recordings = self._record(processing)
        take_snapshots(self, processing)
        self._notify(recordings)

    def may_have_snapshots(self, aggregate_id: UUID) -> bool:
        """Whether this stream may be shortened by a snapshot (then `preload` leaves it to the repository)."""
        return bool(self.snapshotting_intervals)

    def streams_of_orders(self, order_ids: Iterable[UUID]) -> set[UUID]:
        """The streams a batch of messages about these orders is likely to load (see `preload`)."""
        return {stream for order_id in order_ids for stream in self.order_streams(order_id).values()}

    def order_streams(self, order_id: UUID) -> dict[str, UUID]:
        """The streams this application keeps about one order, by kind, for the audit.

        Each application derives its aggregates' ids from the order id itself, so
        the audit asks it rather than repeating the derivations; none by default.
        """
        return {}

    def get(
        self, aggregate_id: UUID, cls: type[TAggregate], *, version: int | None = None
    ) -> TAggregate:
        unit = self._unit_of_work.get(None)
        if unit is not None and version is None and aggregate_id in unit.aggregates:
            aggregate: object = unit.aggregates[aggregate_id]
        elif unit is not None and version is None and aggregate_id in unit.loaded:
            aggregate = unit.loaded[aggregate_id]
            if aggregate is None:
                raise AggregateNotFoundError(aggregate_id)
        else:
            aggregate = self.repository.get(aggregate_id, version=version)
        if not isinstance(aggregate, cls):
            raise TypeError(f"{aggregate_id} is a {type(aggregate).__name__}, not {cls.__name__}")
        return aggregate

    def find(
        self, aggregate_id: UUID, cls: type[TAggregate], *, version: int | None = None
    ) -> TAggregate | None:
        try:
            return self.get(aggregate_id, cls, version=version)
        except AggregateNotFoundError:
            return None


"""The saga application: integration events in, saga decisions (and the commands they carry) out.

Each integration event is handled exactly once: the saga's new events and the
message's tracking row (its source application and position) are recorded in
one transaction. Two deliveries of one saga's messages conflict on the saga's
version; the loser reloads the saga and decides again. An operator's retry of
a saga that NEEDS_ATTENTION (`retry_saga`) is recorded the same way, untracked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Tracking

from commands.base import ContextApplication
from commands.command import ConcurrencyError
from commands.contract import messages as m
from domain.base import Aggregate, NotFoundError, caused_by
from process_managers.compensation_retries import DEFAULT_RETRIES, Retries
from process_managers.saga import DEFAULT_STEP_TIMEOUT, OrderFulfillment
from process_managers.steps import StepName

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware, in UTC."""


def utc_now() -> datetime:
    return datetime.now(UTC)


# Decisions worth a line at INFO: each that sends a command, and each that ends a step or the saga
# badly or for good. The rest (a step succeeded, compensation began) are at DEBUG.
_NOTEWORTHY = (
    OrderFulfillment.StepRequested, OrderFulfillment.CompensationRequested,
    OrderFulfillment.StockCommitRequested, OrderFulfillment.CompletionRequested,
    OrderFulfillment.CancellationRequested, OrderFulfillment.StepFailed, OrderFulfillment.StepTimedOut,
    OrderFulfillment.StepCompensated, OrderFulfillment.Completed, OrderFulfillment.Compensated,
    OrderFulfillment.AttentionNeeded, OrderFulfillment.CompensationResumed,
)


def _log_decisions(heard: m.IntegrationEvent | str, decided: Sequence[object]) -> None:
    """One line per message the saga hears, inside its `caused_by`, so the line carries the ids."""
    level = logging.INFO if any(isinstance(e, _NOTEWORTHY) for e in decided) else logging.DEBUG
    if log.isEnabledFor(level):
        what = heard if isinstance(heard, str) else type(heard).__name__
        log.log(level, "saga heard %s; decided %s", what,
                ", ".join(type(e).__name__ for e in decided) or "nothing")


class SagaNotFoundError(NotFoundError):
    code = "SAGA_NOT_FOUND"


class SagaNotStartedError(RuntimeError):
    """A customer's cancellation overtook the order's OrderPlaced (a retry queue reordered them).

    Not a business refusal: the consumer retries it, and it takes effect once the saga has started.
    """


class Sagas(ContextApplication):
    """Runs one OrderFulfillment saga per order, driven by the contexts' integration events."""

    name = "OrderFulfillment"
    # The saga writes its own line per message, naming what it heard and decided (`_log_decisions`).
    handled_log_level = logging.DEBUG

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        step_timeout: timedelta = DEFAULT_STEP_TIMEOUT,
        clock: Clock = utc_now,
        retries: Retries = DEFAULT_RETRIES,
    ) -> None:
        """`retries`: how often an unconfirmed undoing is sent before the saga NEEDS_ATTENTION."""
        if step_timeout <= timedelta(0):
            raise ValueError(f"a step timeout must be positive, got {step_timeout}")
        super().__init__(env)
        self.step_timeout = step_timeout
        self.clock = clock
        self.retries = retries

    def handle_event(self, event: m.IntegrationEvent, tracking: Tracking | None) -> bool:
        """Let the order's saga hear `event`, once per tracking row.

        An OrderPlaced starts the saga. A cancellation for an order whose saga has not
        started raises SagaNotStartedError, to be retried; any other event for an order
        without a saga is recorded as handled and changes nothing. Returns False when
        this tracking row was handled before (a redelivery), and without a tracking row,
        False when the saga recorded nothing.
        """
        if tracking is None:
            return self._record_untracked(lambda: self._hear(event), event.order_id, None)
        # A redelivery collides on its tracking row when recorded, and execute_once tells.
        return self.execute_once(
            tracking,
            lambda: self._hear(event),
            correlation_id=event.order_id,
            causation_id=f"{tracking.application_name}:{tracking.notification_id}",
        )

    def time_out(
        self, order_id: UUID, step: StepName | str, attempt: int, now: datetime | None = None
    ) -> bool:
        """The deadline of `attempt` at `step` has come (for the deadline scheduler).

        Returns True if the step was timed out now; False if that attempt had already
        ended, its deadline is still ahead, or there is no such saga.
        """
        name, at = StepName(step), now or self.clock()

        def decide() -> list[OrderFulfillment]:
            saga = self.find_saga(order_id)
            timed_out = saga is not None and saga.time_out(
                name, attempt, at, step_timeout=self.step_timeout, retries=self.retries
            )
            if saga is None or not timed_out:
                return []
            _log_decisions(f"the deadline of {name} attempt {attempt}", saga.pending_events)
            return [saga]

        causation = f"OrderFulfillment:deadline:{name}:{attempt}"
        return self._record_untracked(decide, order_id, causation)

    def retry_saga(self, order_id: UUID, requested_by: str | None = None) -> int:
        """Send the stuck undoing of a saga that NEEDS_ATTENTION again, with fresh attempts.

        `requested_by` (who asked) is recorded with it. Returns the saga's version
        afterwards. Raises SagaNotFoundError for an order without a saga, and
        SagaNeedsNoRetryError (recording nothing) for a saga that does not need attention.
        """
        def decide() -> list[OrderFulfillment]:
            saga = self.get_saga(order_id)
            saga.retry(self.clock(), retries=self.retries, who=requested_by)
            _log_decisions("an operator's retry", saga.pending_events)
            return [saga]

        self._record_untracked(decide, order_id, "OrderFulfillment:retry")
        return self.get_saga(order_id).version

    def get_saga(self, order_id: UUID, *, version: int | None = None) -> OrderFulfillment:
        saga = self.find_saga(order_id, version=version)
        if saga is None:
            raise SagaNotFoundError(f"no saga for order {order_id}", field="order_id")
        return saga

    def order_streams(self, order_id: UUID) -> dict[str, UUID]:
        return {"saga": OrderFulfillment.create_id(order_id)}

    def find_saga(self, order_id: UUID, *, version: int | None = None) -> OrderFulfillment | None:
        return self.find(OrderFulfillment.create_id(order_id), OrderFulfillment, version=version)

    def _hear(self, event: m.IntegrationEvent) -> list[OrderFulfillment]:
        saga, now = self.find_saga(event.order_id), self.clock()
        if saga is not None:
            already = len(saga.pending_events)  # a batch may have changed this saga before
            saga.on(event, now=now, step_timeout=self.step_timeout, retries=self.retries)
            _log_decisions(event, saga.pending_events[already:])
            return [saga]
        if isinstance(event, m.OrderPlaced):
            saga = OrderFulfillment.start(event, now=now, step_timeout=self.step_timeout)
            _log_decisions(event, saga.pending_events)
            return [saga]
        if isinstance(event, m.OrderCancellationRequested):
            raise SagaNotStartedError(f"order {event.order_id} is to be cancelled before its saga started")
        log.info("no saga for order %s; %s ignored", event.order_id, type(event).__name__)
        return []

    def _record_untracked(
        self,
        decide: Callable[[], Sequence[Aggregate]],
        correlation_id: UUID,
        causation_id: str | None,
    ) -> bool:
        """Like `execute_once` without a tracking row: True if anything was recorded."""
        for _ in range(self.max_conflict_retries):
            with caused_by(correlation_id, causation_id):
                aggregates = decide()
            if not any(a.pending_events for a in aggregates):
                return False
            try:
                self.record(aggregates, None)
                return True
            except IntegrityError:
                continue  # another writer moved the saga on: decide again
        raise ConcurrencyError(f"gave up after {self.max_conflict_retries} conflicting writes")

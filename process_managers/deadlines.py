"""Durable step deadlines: the saga's own log is the schedule.

Every `StepRequested` records its deadline, and so does every
`CompensationRequested` (an undoing unconfirmed by then is sent again); the
events that end a step (success, failure, timeout), its undoing (confirmed, or
left to an operator) or the saga remove it. `DeadlineIndex` follows the
saga application's notification log (with a `LogFollower`, which also keeps the
scheduler's time) and keeps the deadlines still pending in memory; a new index
reads the log from the start, so a deadline set before a crash or a restart
still fires. Firing is idempotent: the saga times out a step
only if that very attempt is still awaited, so two schedulers, or a deadline
fired twice, change nothing more than one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from commands.base import ContextApplication
from commands.following import stored_state
from process_managers.saga import OrderFulfillment
from process_managers.steps import StepName

log = logging.getLogger(__name__)

Saga = OrderFulfillment
FOLLOWED = (
    Saga.Started, Saga.StepRequested, Saga.StepSucceeded, Saga.StepFailed, Saga.StepTimedOut,
    Saga.CompensationRequested, Saga.StepCompensated, Saga.AttentionNeeded, Saga.Completed, Saga.Compensated,
)
REQUESTS = (Saga.StepRequested, Saga.CompensationRequested)
STEP_ENDINGS = (
    Saga.StepSucceeded, Saga.StepFailed, Saga.StepTimedOut, Saga.StepCompensated, Saga.AttentionNeeded,
)


@dataclass(frozen=True, order=True)
class Deadline:
    due: datetime
    order_id: UUID
    step: StepName
    attempt: int


class TimesOut(Protocol):
    """What firing needs of the saga application."""

    def time_out(
        self, order_id: UUID, step: StepName | str, attempt: int, now: datetime | None = None
    ) -> bool: ...


class DeadlineIndex:
    """The pending step deadlines of every saga, kept up to date from the saga log."""

    page_size = 1000

    def __init__(self, sagas: ContextApplication, *, every: float = 1.0) -> None:
        """`every`: how often the scheduler that follows `log` looks for deadlines that have come."""
        self._app = sagas
        self._kinds: dict[str, type[Any]] = {get_topic(cls): cls for cls in FOLLOWED}
        # Saves do not wake it: deadlines come by the clock, and the index catches up before each look.
        # It follows the whole log, so that what this process's saves commit is handed to it, not read
        # back from the store; the few topics it does not follow are skipped here.
        self.log = sagas.follower(window=self.page_size, poll_interval=every, woken_by_saves=False)
        self._position = 0
        self._orders: dict[UUID, UUID] = {}  # saga id -> order id, for unfinished sagas
        # Each unfinished saga's pending deadlines by step: a saga's end drops its own, not a scan of all.
        self._pending: dict[UUID, dict[StepName, Deadline]] = {}
        self._lock = threading.Lock()
        self.catch_up()

    @property
    def position(self) -> int:
        """The last notification of the saga log this index has read."""
        return self._position

    def catch_up(self) -> int:
        """Read what the saga log recorded since the last call; returns how many events mattered."""
        with self._lock:
            read = 0

            def take(window: Sequence[Notification]) -> None:
                nonlocal read
                for notification in window:
                    if notification.topic not in self._kinds:
                        continue
                    # A deadline names no person: the order's address stays sealed, no key is looked up.
                    self._follow(notification, stored_state(self._app.mapper, notification, opening=False))
                    read += 1

            self._position = self.log.catch_up(self._position, take)
            return read

    def pending(self) -> list[Deadline]:
        """Every deadline still pending, soonest first (as of the last catch-up)."""
        with self._lock:
            return sorted(deadline for steps in self._pending.values() for deadline in steps.values())

    def due(self, now: datetime) -> list[Deadline]:
        """The deadlines that have come by `now`, soonest first, after catching up with the log."""
        self.catch_up()
        with self._lock:  # the few that have come, sorted: not every saga's pending deadline, each tick
            pending = (deadline for steps in self._pending.values() for deadline in steps.values())
            return sorted(deadline for deadline in pending if deadline.due <= now)

    def fire_due(self, sagas: TimesOut, now: datetime) -> int:
        """Time out every step whose deadline has come; returns how many were timed out.

        A deadline that fails to fire stays pending and is tried again next time.
        """
        fired = 0
        for deadline in self.due(now):
            try:
                fired += sagas.time_out(deadline.order_id, deadline.step, deadline.attempt, now)
            except Exception:
                log.exception("timing out %s failed; it stays pending", deadline)
                continue
            self._forget(deadline)
        return fired

    def _forget(self, deadline: Deadline) -> None:
        with self._lock:
            for saga_id, steps in list(self._pending.items()):
                if steps.get(deadline.step) == deadline:
                    self._drop(saga_id, deadline.step)

    def _follow(self, notification: Notification, state: dict[str, Any]) -> None:
        # Read from the stored JSON: this follows every saga's every step.
        saga_id, kind = cast(UUID, notification.originator_id), self._kinds[notification.topic]
        if kind is Saga.Started:
            self._orders[saga_id] = UUID(state["order_id"])
        elif kind in REQUESTS and saga_id in self._orders:
            step = StepName(state["step"])
            self._drop(saga_id, step)
            if state.get("deadline"):  # an undoing recorded before undoings were retried has none
                self._pending.setdefault(saga_id, {})[step] = Deadline(
                    datetime.fromisoformat(state["deadline"]), self._orders[saga_id], step, state["attempt"]
                )
        elif kind in STEP_ENDINGS:
            self._drop(saga_id, StepName(state["step"]))
        elif kind in (Saga.Completed, Saga.Compensated):
            self._orders.pop(saga_id, None)
            self._pending.pop(saga_id, None)

    def _drop(self, saga_id: UUID, step: StepName) -> None:
        steps = self._pending.get(saga_id)
        if steps is not None:
            steps.pop(step, None)
            if not steps:
                del self._pending[saga_id]


def fire_due(sagas: TimesOut, index: DeadlineIndex, now: datetime) -> int:
    """One tick of the deadline scheduler: fire what has come due by `now`."""
    return index.fire_due(sagas, now)

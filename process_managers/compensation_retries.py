"""Where an undoing is sent again: the saga never waits in silence for a compensation.

A refund, a release or a shipment's cancellation can go unanswered: its command
is parked in the dead letters (the context refused it, or kept failing on it),
or its reply is lost in a queue that nobody consumes. So every undoing has a
deadline, as every step has: when it passes unconfirmed, the undoing is sent
again, under a new command id, and waited for longer (the wait doubles up to a
cap). Sending it again is safe because every undoing is idempotent in its
context: a refund gives back only what is left of the charge, a release or a
cancellation of what is already released or cancelled changes nothing.

After `Retries.attempts` unconfirmed attempts the saga stops sending and becomes
NEEDS_ATTENTION; an operator's retry starts a fresh round of attempts. A
confirmation that arrives meanwhile (a parked refund re-driven by hand) is
heard as ever, and the compensation goes on. Pure functions, as in `policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.base import InvalidStateError
from process_managers.decisions import AskForAttention, Compensate, Decision, ResumeCompensation
from process_managers.state import SagaState, SagaStatus, StepStatus
from process_managers.steps import StepName

BACKOFF_CAP = timedelta(minutes=10)
"""The longest wait for one attempt, unless the first wait is longer still."""


@dataclass(frozen=True)
class Retries:
    """How often, and how patiently, an undoing is sent before an operator is asked to look."""

    attempts: int = 5
    first_wait: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"compensation attempts must be at least 1, got {self.attempts}")
        if self.first_wait <= timedelta(0):
            raise ValueError(f"the first compensation wait must be positive, got {self.first_wait}")

    def wait(self, attempt: int) -> timedelta:
        """How long the `attempt`-th try of a round (counted from 1) is waited for."""
        doubled: timedelta = self.first_wait * 2 ** min(max(attempt - 1, 0), 30)
        return min(doubled, max(BACKOFF_CAP, self.first_wait))


DEFAULT_RETRIES = Retries()


class SagaNeedsNoRetryError(InvalidStateError):
    """Only a saga whose undoing is stuck (NEEDS_ATTENTION) can be retried."""

    code = "SAGA_NOT_NEEDING_ATTENTION"


def when_an_undoing_goes_unconfirmed_send_it_again(
    state: SagaState, name: StepName, attempt: int, now: datetime, retries: Retries
) -> list[Decision]:
    """The deadline of undo `attempt` at `name` has come: send it again, or ask for attention.

    Changes nothing unless that very attempt is still awaited and its deadline has passed.
    """
    current = state.step(name)
    if state.status is not SagaStatus.COMPENSATING or current.status is not StepStatus.COMPENSATING:
        return []
    if current.undo_attempts != attempt or current.deadline is None or now < current.deadline:
        return []
    if current.undo_attempts_this_round >= retries.attempts:
        attempts = current.undo_attempts_this_round
        reason = f"the {name} undoing went unconfirmed after {attempts} attempt(s)"
        return [AskForAttention(name, attempts, reason)]
    return [Compensate(name)]


def when_an_operator_retries_send_the_undoing_again(
    state: SagaState, requested_by: str | None = None
) -> list[Decision]:
    """A saga that NEEDS_ATTENTION sends its stuck undoing again, with fresh attempts; who asked is kept.

    Any other saga refuses: nothing of it is stuck, so a retry would only disturb it.
    """
    stuck = state.compensations_awaited
    if state.status is not SagaStatus.NEEDS_ATTENTION or not stuck:
        raise SagaNeedsNoRetryError(
            f"the saga of order {state.order.order_id} is {state.status}; only a saga that "
            "NEEDS_ATTENTION can be retried", field="order_id",
        )
    return [ResumeCompensation(stuck[0], requested_by), Compensate(stuck[0])]

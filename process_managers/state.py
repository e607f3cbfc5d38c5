"""What the saga knows at any moment: an immutable value the policy reads.

The `OrderFulfillment` aggregate holds one and replaces it on every event, so
the policy's decisions are pure functions of this value and can be tested
without an aggregate, an application or a store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.values import Address, Money
from process_managers.steps import STEPS, StepName


class SagaStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"
    # An undoing went unconfirmed through every attempt: an operator must look, then retry it.
    NEEDS_ATTENTION = "NEEDS_ATTENTION"


class StepStatus(StrEnum):
    PENDING = "PENDING"
    REQUESTED = "REQUESTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    SKIPPED = "SKIPPED"


class SagaLine(BaseModel):
    """An order line as the saga recorded it when the order was placed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: UUID
    quantity: int
    unit_price: Decimal


class OrderFacts(BaseModel):
    """The facts of the placed order that the saga's commands are built from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: UUID
    customer_id: UUID
    lines: tuple[SagaLine, ...]
    total: Money
    shipping_address: Address


@dataclass(frozen=True)
class StepState:
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    deadline: datetime | None = None  # set while the step is REQUESTED, and while its undoing is awaited
    timed_out: bool = False  # its outcome was not known in time; it may still happen late
    undo_attempts: int = 0  # undoings sent, ever: each has a command id of its own
    undo_round_from: int = 0  # undo_attempts when the current round began (an operator's retry starts one)

    @property
    def undo_attempts_this_round(self) -> int:
        return self.undo_attempts - self.undo_round_from
    facts: Mapping[str, Any] = field(default_factory=dict)


def _all_pending() -> Mapping[StepName, StepState]:
    return {step.name: StepState() for step in STEPS}


@dataclass(frozen=True)
class SagaState:
    saga_id: UUID
    order: OrderFacts
    status: SagaStatus = SagaStatus.RUNNING
    steps: Mapping[StepName, StepState] = field(default_factory=_all_pending)
    reason: str | None = None
    stock_commit_requested: bool = False
    completion_requested: bool = False
    cancellation_requested: bool = False
    cancellation_declined: bool = False

    def step(self, name: StepName) -> StepState:
        return self.steps[name]

    @property
    def is_finished(self) -> bool:
        return self.status in (SagaStatus.COMPLETED, SagaStatus.COMPENSATED)

    @property
    def undoing(self) -> bool:
        """Compensating, whether or not an undoing is stuck waiting for an operator."""
        return self.status in (SagaStatus.COMPENSATING, SagaStatus.NEEDS_ATTENTION)

    @property
    def past_point_of_no_return(self) -> bool:
        """Stock committed as sold cannot be released: from here the order can only complete."""
        return self.stock_commit_requested

    @property
    def in_flight(self) -> StepName | None:
        """The step whose outcome the saga is waiting for, if any."""
        return self._first_with(StepStatus.REQUESTED)

    @property
    def current_step(self) -> StepName | None:
        """The step being done or being undone; None between steps and at the end."""
        return self.in_flight or self._first_with(StepStatus.COMPENSATING)

    @property
    def compensations_awaited(self) -> tuple[StepName, ...]:
        """Steps whose undoing was asked for and is not confirmed yet."""
        return tuple(n for n, s in self.steps.items() if s.status is StepStatus.COMPENSATING)

    @property
    def still_to_undo(self) -> tuple[StepName, ...]:
        """While compensating: the steps still to undo (or to hear from), latest first."""
        if not self.undoing:
            return ()
        waiting = (StepStatus.REQUESTED, StepStatus.SUCCEEDED, StepStatus.COMPENSATING)
        return tuple(
            step.name for step in reversed(STEPS)
            if step.compensable and self.steps[step.name].status in waiting
        )

    def _first_with(self, status: StepStatus) -> StepName | None:
        return next((n for n, s in self.steps.items() if s.status is status), None)

    def with_step(self, name: StepName, **changes: Any) -> SagaState:
        """This state with one step changed."""
        return replace(self, steps={**self.steps, name: replace(self.steps[name], **changes)})

    def compensating(self, reason: str) -> SagaState:
        """Undoing starts: steps never begun will never run."""
        steps = {
            name: replace(s, status=StepStatus.SKIPPED) if s.status is StepStatus.PENDING else s
            for name, s in self.steps.items()
        }
        return replace(self, status=SagaStatus.COMPENSATING, reason=reason, steps=steps)

    def with_fresh_undo_attempts(self, name: StepName) -> SagaState:
        """A new round of attempts at undoing `name` begins (an operator's retry)."""
        return self.with_step(name, undo_round_from=self.steps[name].undo_attempts)

    def going_on(self) -> SagaState:
        """An undoing is confirmed, or retried: a saga that awaited an operator compensates again."""
        if self.status is not SagaStatus.NEEDS_ATTENTION:
            return self
        return replace(self, status=SagaStatus.COMPENSATING)

    def changed(self, **changes: Any) -> SagaState:
        return replace(self, **changes)

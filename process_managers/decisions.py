"""What the saga can decide: each decision becomes one saga event.

The policy returns these; the `OrderFulfillment` aggregate records each as the
event of the same meaning, building the command it carries where it sends one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from process_managers.steps import StepName


@dataclass(frozen=True)
class RequestStep:
    step: StepName


@dataclass(frozen=True)
class RecordSuccess:
    step: StepName
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordFailure:
    step: StepName
    reason: str


@dataclass(frozen=True)
class RecordTimeout:
    step: StepName
    attempt: int


@dataclass(frozen=True)
class StartCompensation:
    reason: str


@dataclass(frozen=True)
class Compensate:
    step: StepName


@dataclass(frozen=True)
class RecordCompensated:
    step: StepName


@dataclass(frozen=True)
class AskForAttention:
    """Every attempt at undoing `step` went unconfirmed: stop sending it until an operator retries."""

    step: StepName
    attempts: int
    reason: str


@dataclass(frozen=True)
class ResumeCompensation:
    """`requested_by` retries the stuck undoing of `step`, with a fresh round of attempts."""

    step: StepName
    requested_by: str | None = None


@dataclass(frozen=True)
class RequestStockCommit:
    pass


@dataclass(frozen=True)
class RequestCompletion:
    pass


@dataclass(frozen=True)
class RequestOrderCancellation:
    pass


@dataclass(frozen=True)
class DeclineCancellation:
    reason: str


@dataclass(frozen=True)
class Finish:
    pass


@dataclass(frozen=True)
class FinishCompensation:
    pass


Decision = (
    RequestStep | RecordSuccess | RecordFailure | RecordTimeout | StartCompensation | Compensate
    | RecordCompensated | AskForAttention | ResumeCompensation | RequestStockCommit | RequestCompletion
    | RequestOrderCancellation | DeclineCancellation | Finish | FinishCompensation
)

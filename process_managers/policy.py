"""The saga's decisions: pure functions from what it knows and what it hears to what it does.

`decide(state, event)` and `decide_timeout(state, step, attempt, now)` return the
decisions to record, in order; the aggregate turns each into one event, building
the command it carries. Nothing here reads a clock or a store.

The rules, from DESIGN §3: the steps run one after the other; a business failure
or a timeout at step k undoes the steps before it, latest first and one at a
time, each only once the one after it is confirmed undone, then cancels the
order. A step that timed out may still happen later, so its own undoing is sent
at once: the receiving context remembers an undoing that arrives first and
refuses the late action. A step in flight when the customer cancels is undone
once its outcome, or its deadline, is known. Replies that change nothing about
what the saga waits for (duplicates, stale ones, anything after the end) are ignored.
An undoing that goes unconfirmed is sent again (`compensation_retries`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from commands.contract import messages as m
from process_managers.compensation_retries import (
    DEFAULT_RETRIES,
    Retries,
    when_an_undoing_goes_unconfirmed_send_it_again,
)
from process_managers.decisions import (
    Compensate,
    Decision,
    DeclineCancellation,
    Finish,
    FinishCompensation,
    RecordCompensated,
    RecordFailure,
    RecordSuccess,
    RecordTimeout,
    RequestCompletion,
    RequestOrderCancellation,
    RequestStep,
    RequestStockCommit,
    StartCompensation,
)
from process_managers.state import SagaState, SagaStatus, StepStatus
from process_managers.steps import (
    COMMIT_STOCK_AFTER,
    FIRST_STEP,
    Step,
    StepName,
    compensated_step,
    failed_step,
    next_step,
    step_named,
    steps_before,
    succeeded_step,
)

TOO_LATE_TO_CANCEL = "the shipment is booked and the stock sold; the order can no longer be cancelled"


def decide(state: SagaState, event: m.IntegrationEvent) -> list[Decision]:
    """What the saga does on hearing `event`; an empty list when it changes nothing."""
    if state.is_finished:
        return []
    if step := succeeded_step(event):
        return when_a_step_succeeds_go_on_or_undo_it(state, step, _facts(event))
    if step := failed_step(event):
        return when_a_step_fails_undo_the_steps_before_it(state, step, _reason(event))
    if step := compensated_step(event):
        return when_an_undoing_is_confirmed_undo_the_step_before(state, step)
    match event:
        case m.OrderPlaced():
            return when_the_order_is_placed_charge_the_payment(state)
        case m.StockCommitted():
            return when_the_stock_is_committed_notify_the_customer(state)
        case m.OrderCancellationRequested(reason=reason):
            return when_the_customer_cancels_undo_what_was_done(state, reason)
        case m.OrderCompleted():
            return [Finish()] if state.completion_requested else []
        case m.OrderCancelled():
            return [FinishCompensation()] if state.cancellation_requested else []
    return []


def decide_timeout(
    state: SagaState, name: StepName, attempt: int, now: datetime, retries: Retries = DEFAULT_RETRIES
) -> list[Decision]:
    """A step's deadline has come: treat the step as failed, and undo it in case it happens late.

    The deadline of an undoing sends it again instead. Changes nothing unless that
    very attempt is still awaited and its deadline has passed.
    """
    current = state.step(name)
    if current.status is StepStatus.COMPENSATING:
        return when_an_undoing_goes_unconfirmed_send_it_again(state, name, attempt, now, retries)
    if state.is_finished or current.status is not StepStatus.REQUESTED or current.attempts != attempt:
        return []
    if current.deadline is None or now < current.deadline:
        return []
    step = step_named(name)
    timed_out: list[Decision] = [RecordTimeout(name, attempt)]
    if not step.failure_stops_saga:
        return [*timed_out, *_go_on_after(name)]
    if state.status is SagaStatus.RUNNING:
        timed_out.append(StartCompensation(f"{name} timed out"))
    return [*timed_out, *_undo_from(state, step)]


def when_the_order_is_placed_charge_the_payment(state: SagaState) -> list[Decision]:
    first = state.step(FIRST_STEP)
    if state.status is not SagaStatus.RUNNING or first.status is not StepStatus.PENDING:
        return []
    return [RequestStep(FIRST_STEP)]


def when_a_step_succeeds_go_on_or_undo_it(
    state: SagaState, step: Step, facts: Mapping[str, Any]
) -> list[Decision]:
    # After a timeout the step is already being undone: its undoing was sent at the
    # deadline and covers a late success too (a refund after the charge, or a void before it).
    if state.step(step.name).status is not StepStatus.REQUESTED:
        return []
    succeeded = RecordSuccess(step.name, facts)
    if state.undoing:
        return [succeeded, *_undo_from(state, step)]
    return [succeeded, *_go_on_after(step.name)]


def when_a_step_fails_undo_the_steps_before_it(
    state: SagaState, step: Step, reason: str
) -> list[Decision]:
    current = state.step(step.name)
    if current.status is StepStatus.COMPENSATING and current.timed_out:
        # Timed out and being undone, and now known never to have happened: nothing is left
        # to undo for it (a declined payment is never refunded; a rejected reservation holds nothing).
        return [RecordFailure(step.name, reason), *_undo_before(state, step.name)]
    if current.status is not StepStatus.REQUESTED:
        return []
    failed = RecordFailure(step.name, reason)
    if state.undoing:
        return [failed, *_undo_before(state, step.name)]
    if not step.failure_stops_saga:
        return [failed, *_go_on_after(step.name)]
    return [failed, StartCompensation(f"{step.failed_as}: {reason}"), *_undo_before(state, step.name)]


def when_an_undoing_is_confirmed_undo_the_step_before(state: SagaState, step: Step) -> list[Decision]:
    if state.step(step.name).status is not StepStatus.COMPENSATING:
        return []
    return [RecordCompensated(step.name), *_undo_before(state, step.name)]


def when_the_stock_is_committed_notify_the_customer(state: SagaState) -> list[Decision]:
    following = next_step(COMMIT_STOCK_AFTER)
    if not state.stock_commit_requested or following is None:
        return []
    if state.step(following).status is not StepStatus.PENDING:
        return []
    return [RequestStep(following)]


def when_the_customer_cancels_undo_what_was_done(state: SagaState, reason: str) -> list[Decision]:
    if state.status is not SagaStatus.RUNNING:
        return []  # already undoing, for this or another reason
    if state.past_point_of_no_return:
        return [] if state.cancellation_declined else [DeclineCancellation(TOO_LATE_TO_CANCEL)]
    started = StartCompensation(reason)
    if state.in_flight is not None:
        return [started]  # its outcome or its deadline will say whether it needs undoing
    return [started, *_undo_before(state, None)]


def _go_on_after(name: StepName) -> list[Decision]:
    if name is COMMIT_STOCK_AFTER:
        return [RequestStockCommit()]
    following = next_step(name)
    return [RequestStep(following)] if following else [RequestCompletion()]


def _undo_from(state: SagaState, step: Step) -> list[Decision]:
    return [Compensate(step.name)] if step.compensable else _undo_before(state, step.name)


def _undo_before(state: SagaState, name: StepName | None) -> list[Decision]:
    """Undo the latest step before `name` that is done; when none is left, cancel the order."""
    for step in steps_before(name):
        if step.compensable and state.step(step.name).status is StepStatus.SUCCEEDED:
            return [Compensate(step.name)]
    return [RequestOrderCancellation()]


def _facts(event: m.IntegrationEvent) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude={"order_id"})


def _reason(event: m.IntegrationEvent) -> str:
    return str(getattr(event, "reason", type(event).__name__))

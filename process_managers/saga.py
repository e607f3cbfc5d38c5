"""The OrderFulfillment saga: one per order, recording every decision it takes.

Its events are its decisions; each that asks another context to act carries the command it sends (a `command`
attribute holding a `SagaCommand`), so the outbox relay publishes commands from the saga's own notification
log. The decisions come from `policy` and `compensation_retries`; the aggregate only turns them into events.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from commands.contract import messages as m
from domain.base import Aggregate, kept_ids
from domain.privacy import ERASED_ADDRESS, PersonalData
from domain.values import Address, Money
from process_managers import compensation_retries as cr
from process_managers import decisions as d
from process_managers import outgoing as out
from process_managers import policy as p
from process_managers.outgoing import Origin, SagaCommand
from process_managers.state import OrderFacts, SagaLine, SagaState, SagaStatus, StepState, StepStatus
from process_managers.steps import StepName

DEFAULT_STEP_TIMEOUT = timedelta(seconds=30)


class OrderFulfillment(Aggregate):
    """The process that takes one order from placed to completed, or undoes it and cancels it."""

    class Started(Aggregate.Created):
        personal_data: ClassVar[PersonalData] = PersonalData(
            subject="customer_id", fields={"shipping_address": ERASED_ADDRESS},
        )

        order_id: UUID
        customer_id: UUID
        lines: tuple[SagaLine, ...]
        total: Money
        shipping_address: Address

    class StepRequested(Aggregate.Event):
        # The shipping step's command carries the customer's address to the carrier.
        personal_data: ClassVar[PersonalData] = PersonalData(
            subject="command.payload.customer_id", fields={"command.payload.address": ERASED_ADDRESS},
        )

        step: StepName
        attempt: int
        deadline: datetime
        command: SagaCommand

    class StepSucceeded(Aggregate.Event):
        step: StepName
        facts: dict[str, Any]

    class StepFailed(Aggregate.Event):
        step: StepName
        reason: str

    class StepTimedOut(Aggregate.Event):
        step: StepName
        attempt: int

    class CompensationStarted(Aggregate.Event):
        reason: str

    class CompensationRequested(Aggregate.Event):
        step: StepName
        command: SagaCommand
        attempt: int = 1  # undoings recorded before they were retried had no deadline
        deadline: datetime | None = None

    class AttentionNeeded(Aggregate.Event):
        step: StepName
        attempts: int
        reason: str

    class CompensationResumed(Aggregate.Event):
        step: StepName
        requested_by: str | None = None  # who retried; None in the events recorded before it was kept

    class StepCompensated(Aggregate.Event):
        step: StepName

    class StockCommitRequested(Aggregate.Event):
        command: SagaCommand

    class CompletionRequested(Aggregate.Event):
        command: SagaCommand

    class CancellationRequested(Aggregate.Event):
        command: SagaCommand

    class CancellationDeclined(Aggregate.Event):
        reason: str

    class Completed(Aggregate.Event):
        pass

    class Compensated(Aggregate.Event):
        reason: str

    @staticmethod
    @kept_ids
    def create_id(order_id: UUID) -> UUID:
        """One saga per order, ever, however and wherever it is started."""
        return uuid5(NAMESPACE_URL, f"/sagas/order-fulfillment/{order_id}")

    @classmethod
    def start(
        cls, placed: m.OrderPlaced, *, now: datetime, step_timeout: timedelta = DEFAULT_STEP_TIMEOUT
    ) -> OrderFulfillment:
        """Record the placed order and ask for its first step."""
        lines = tuple(SagaLine(product_id=x.product_id, quantity=x.quantity, unit_price=x.unit_price)
                      for x in placed.lines)
        saga = cls(
            order_id=placed.order_id, customer_id=placed.customer_id, lines=lines,
            total=placed.total, shipping_address=placed.shipping_address,
        )
        saga.on(placed, now=now, step_timeout=step_timeout)
        return saga

    @event(Started)
    def __init__(
        self, order_id: UUID, customer_id: UUID, lines: tuple[SagaLine, ...], total: Money,
        shipping_address: Address,
    ) -> None:
        order = OrderFacts(
            order_id=order_id, customer_id=customer_id, lines=lines, total=total,
            shipping_address=shipping_address,
        )
        self.state = SagaState(saga_id=self.id, order=order)

    @property
    def order_id(self) -> UUID:
        return self.state.order.order_id

    @property
    def status(self) -> SagaStatus:
        return self.state.status

    @property
    def current_step(self) -> StepName | None:
        return self.state.current_step

    @property
    def steps(self) -> dict[StepName, StepState]:
        return dict(self.state.steps)

    @property
    def reason(self) -> str | None:
        return self.state.reason

    def on(
        self, message: m.IntegrationEvent, *, now: datetime,
        step_timeout: timedelta = DEFAULT_STEP_TIMEOUT, retries: cr.Retries = cr.DEFAULT_RETRIES,
    ) -> bool:
        """Hear an integration event and record what it decides; False if it changes nothing."""
        return self._carry_out(p.decide(self.state, message), now, step_timeout, retries)

    def time_out(
        self, step: StepName, attempt: int, now: datetime, *,
        step_timeout: timedelta = DEFAULT_STEP_TIMEOUT, retries: cr.Retries = cr.DEFAULT_RETRIES,
    ) -> bool:
        """The deadline of `attempt` at `step`, or at its undoing, has come; False if it already ended."""
        decisions = p.decide_timeout(self.state, step, attempt, now, retries)
        return self._carry_out(decisions, now, step_timeout, retries)

    def retry(self, now: datetime, retries: cr.Retries = cr.DEFAULT_RETRIES, who: str | None = None) -> None:
        """`who`'s retry of a saga that NEEDS_ATTENTION (else SagaNeedsNoRetryError)."""
        decisions = cr.when_an_operator_retries_send_the_undoing_again(self.state, who)
        self._carry_out(decisions, now, DEFAULT_STEP_TIMEOUT, retries)

    def _carry_out(self, decisions: list[d.Decision], now: datetime, step_timeout: timedelta,
                   retries: cr.Retries) -> bool:
        for decision in decisions:
            if not self._send(decision, now, now + step_timeout, retries):
                self._note(decision)
        return bool(decisions)

    def _send(self, decision: d.Decision, now: datetime, deadline: datetime, retries: cr.Retries) -> bool:
        """Record a decision that sends a command; False if it sends none."""
        state, origin = self.state, Origin(self.id, self.version + 1)
        match decision:
            case d.RequestStep(step=step):
                attempt = state.step(step).attempts + 1
                command = out.step_command(state, step, attempt, origin)
                self._step_requested(step=step, attempt=attempt, deadline=deadline, command=command)
            case d.Compensate(step=step):
                undo, wait = state.step(step).undo_attempts + 1, state.step(step).undo_attempts_this_round + 1
                self._compensation_requested(
                    step=step, command=out.compensation_command(state, step, origin, undo),
                    attempt=undo, deadline=now + retries.wait(wait),
                )
            case d.RequestStockCommit():
                self._stock_commit_requested(command=out.commit_stock(state, origin))
            case d.RequestCompletion():
                self._completion_requested(command=out.complete_order(state, origin))
            case d.RequestOrderCancellation():
                self._cancellation_requested(command=out.cancel_order(state, origin))
            case _:
                return False
        return True

    def _note(self, decision: d.Decision) -> None:
        """Record a decision that sends nothing: an outcome, or a change of course."""
        match decision:
            case d.RecordSuccess(step=step, facts=facts):
                self._step_succeeded(step=step, facts=dict(facts))
            case d.RecordFailure(step=step, reason=reason):
                self._step_failed(step=step, reason=reason)
            case d.RecordTimeout(step=step, attempt=attempt):
                self._step_timed_out(step=step, attempt=attempt)
            case d.StartCompensation(reason=reason):
                self._compensation_started(reason=reason)
            case d.RecordCompensated(step=step):
                self._step_compensated(step=step)
            case d.AskForAttention(step=step, attempts=attempts, reason=reason):
                self._attention_needed(step=step, attempts=attempts, reason=reason)
            case d.ResumeCompensation(step=step, requested_by=by):
                self._compensation_resumed(step=step, requested_by=by)
            case d.DeclineCancellation(reason=reason):
                self._cancellation_declined(reason=reason)
            case d.Finish():
                self._completed()
            case d.FinishCompensation():
                self._compensated(reason=self.state.reason or "compensated")

    @event(StepRequested)
    def _step_requested(self, step: StepName, attempt: int, deadline: datetime,
                        command: SagaCommand) -> None:
        self.state = self.state.with_step(
            step, status=StepStatus.REQUESTED, attempts=attempt, deadline=deadline
        )

    @event(StepSucceeded)
    def _step_succeeded(self, step: StepName, facts: dict[str, Any]) -> None:
        self.state = self.state.with_step(step, status=StepStatus.SUCCEEDED, deadline=None, facts=facts)

    @event(StepFailed)
    def _step_failed(self, step: StepName, reason: str) -> None:
        self.state = self.state.with_step(step, status=StepStatus.FAILED, deadline=None).going_on()

    @event(StepTimedOut)
    def _step_timed_out(self, step: StepName, attempt: int) -> None:
        self.state = self.state.with_step(
            step, status=StepStatus.TIMED_OUT, deadline=None, timed_out=True
        )

    @event(CompensationStarted)
    def _compensation_started(self, reason: str) -> None:
        self.state = self.state.compensating(reason)

    @event(CompensationRequested)
    def _compensation_requested(
        self, step: StepName, command: SagaCommand, attempt: int = 1, deadline: datetime | None = None
    ) -> None:
        self.state = self.state.with_step(
            step, status=StepStatus.COMPENSATING, undo_attempts=attempt, deadline=deadline
        )

    @event(StepCompensated)
    def _step_compensated(self, step: StepName) -> None:
        self.state = self.state.with_step(step, status=StepStatus.COMPENSATED, deadline=None).going_on()

    @event(AttentionNeeded)
    def _attention_needed(self, step: StepName, attempts: int, reason: str) -> None:
        self.state = self.state.with_step(step, deadline=None).changed(status=SagaStatus.NEEDS_ATTENTION)

    @event(CompensationResumed)
    def _compensation_resumed(self, step: StepName, requested_by: str | None) -> None:
        self.state = self.state.with_fresh_undo_attempts(step).going_on()

    @event(StockCommitRequested)
    def _stock_commit_requested(self, command: SagaCommand) -> None:
        self.state = self.state.changed(stock_commit_requested=True)

    @event(CompletionRequested)
    def _completion_requested(self, command: SagaCommand) -> None:
        self.state = self.state.changed(completion_requested=True)

    @event(CancellationRequested)
    def _cancellation_requested(self, command: SagaCommand) -> None:
        self.state = self.state.changed(cancellation_requested=True)

    @event(CancellationDeclined)
    def _cancellation_declined(self, reason: str) -> None:
        self.state = self.state.changed(cancellation_declined=True)

    @event(Completed)
    def _completed(self) -> None:
        self.state = self.state.changed(status=SagaStatus.COMPLETED)

    @event(Compensated)
    def _compensated(self, reason: str) -> None:
        self.state = self.state.changed(status=SagaStatus.COMPENSATED)

"""The commands the saga sends, built from what it knows, and carried in its events.

Every saga event that asks another context to act carries a `SagaCommand`, so
the outbox relay can publish it from the event alone. Command ids derive from
the saga, the step, the attempt and the action, so a decision taken again (after
a conflict, or by a replica) sends the same command, and the receiving context's
exactly-once tracking recognises it. Every command shares the order id as its
correlation id and names the saga event that carries it as its cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict

from commands.command import Command
from commands.inventory import ReserveLine
from domain.base import kept_ids
from domain.notification import ORDER_CONFIRMATION
from process_managers.state import SagaState
from process_managers.steps import CANCEL_ORDER, COMMIT_STOCK, COMPLETE_ORDER, FollowUp, StepName, step_named

MAX_REASON = 500  # the longest reason a command accepts


class SagaCommand(BaseModel):
    """A command as the saga recorded it: enough to publish it without the saga."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: UUID
    type: str  # the Command class name, e.g. "ChargePayment"
    context: str  # the context that handles it: "payments", "inventory", ...
    payload: dict[str, Any]  # the command's model_dump(mode="json")

    @classmethod
    def of(cls, command: Command, context: str) -> SagaCommand:
        return cls(
            command_id=command.command_id,
            type=type(command).__name__,
            context=context,
            payload=command.model_dump(mode="json"),
        )

    @property
    def routing_key(self) -> str:
        return f"{self.context}.{self.type}"


@dataclass(frozen=True)
class Origin:
    """The saga event a command will travel in: its id is the command's causation id."""

    saga_id: UUID
    version: int

    @property
    def causation_id(self) -> str:
        return f"OrderFulfillment:{self.saga_id}:{self.version}"


@kept_ids
def command_id(saga_id: UUID, step: str, attempt: int, action: str) -> UUID:
    return uuid5(saga_id, f"{step}/{attempt}/{action}")


def step_command(state: SagaState, name: StepName, attempt: int, origin: Origin) -> SagaCommand:
    """The command that does step `name`."""
    step = step_named(name)
    fields = _STEP_FIELDS[name](state)
    ident = command_id(state.saga_id, name, attempt, "do")
    return SagaCommand.of(_build(step.command, state, ident, origin, fields), step.context)


def compensation_command(
    state: SagaState, name: StepName, origin: Origin, undo_attempt: int = 1
) -> SagaCommand:
    """The command that undoes step `name`, giving the saga's reason where it takes one.

    Each attempt at undoing has an id of its own (the context handles an id once, so
    a resend under the first one would be taken for a repeat); the undoing itself is
    idempotent in its context, so several attempts have the effect of one.
    """
    step = step_named(name)
    if step.compensation is None:
        raise ValueError(f"the {name} step cannot be undone")
    fields = _with_reason(step.compensation, state)
    action = "undo" if undo_attempt == 1 else f"undo-{undo_attempt}"
    ident = command_id(state.saga_id, name, state.step(name).attempts, action)
    return SagaCommand.of(_build(step.compensation, state, ident, origin, fields), step.context)


def follow_up_command(state: SagaState, follow_up: FollowUp, origin: Origin) -> SagaCommand:
    """CommitStock, CompleteOrder or CancelOrder for the saga's order."""
    action = follow_up.command.__name__
    ident = command_id(state.saga_id, follow_up.context, 1, action)
    fields = _with_reason(follow_up.command, state)
    return SagaCommand.of(_build(follow_up.command, state, ident, origin, fields), follow_up.context)


def commit_stock(state: SagaState, origin: Origin) -> SagaCommand:
    return follow_up_command(state, COMMIT_STOCK, origin)


def complete_order(state: SagaState, origin: Origin) -> SagaCommand:
    return follow_up_command(state, COMPLETE_ORDER, origin)


def cancel_order(state: SagaState, origin: Origin) -> SagaCommand:
    return follow_up_command(state, CANCEL_ORDER, origin)


def _build(
    cls: type[Command], state: SagaState, ident: UUID, origin: Origin, fields: dict[str, Any]
) -> Command:
    order_id = state.order.order_id
    return cls.model_validate({
        "command_id": ident,
        "correlation_id": order_id,
        "causation_id": origin.causation_id,
        "order_id": order_id,
        **fields,
    })


def _with_reason(cls: type[Command], state: SagaState) -> dict[str, Any]:
    if "reason" not in cls.model_fields:
        return {}
    return {"reason": (state.reason or "order fulfilment was abandoned")[:MAX_REASON]}


def _charge(state: SagaState) -> dict[str, Any]:
    total = state.order.total
    return {"customer_id": state.order.customer_id, "amount": total.amount, "currency": total.currency}


def _reserve(state: SagaState) -> dict[str, Any]:
    lines = [ReserveLine(product_id=x.product_id, quantity=x.quantity) for x in state.order.lines]
    return {"lines": lines}


def _ship(state: SagaState) -> dict[str, Any]:
    # The old system booked parcels without the address; the order's address goes with every one,
    # and whose it is, so that the customer's key keeps it in the shipment's events too.
    return {"address": state.order.shipping_address, "customer_id": state.order.customer_id}


def _notify(state: SagaState) -> dict[str, Any]:
    order = state.order
    tracking = state.step(StepName.SHIPPING).facts.get("tracking_number")
    items = sum(line.quantity for line in order.lines)
    body = f"Thank you for your order {order.order_id}: {items} item(s), {order.total} in total."
    if tracking:
        body += f" It is on its way; tracking number {tracking}."
    return {
        "customer_id": order.customer_id,
        "purpose": ORDER_CONFIRMATION,
        "subject": "Your order is confirmed",
        "body": body,
    }


_STEP_FIELDS = {
    StepName.PAYMENT: _charge,
    StepName.INVENTORY: _reserve,
    StepName.SHIPPING: _ship,
    StepName.NOTIFICATION: _notify,
}

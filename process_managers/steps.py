"""The order-fulfilment saga's steps (DESIGN §3), as data.

Each step names the command that starts it, the integration events that end it
(success or business failure), the command that undoes it and the events that
confirm the undoing. The policy reads this table; it never names a context's
messages itself, so a row here is the whole truth about a step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from commands.command import Command
from commands.contract import messages as m
from commands.inventory import CommitStock, ReleaseStock, ReserveStock
from commands.notifications import SendNotification
from commands.orders import CancelOrder, CompleteOrder
from commands.payments import ChargePayment, RefundPayment
from commands.shipping import CancelShipment, CreateShipment


class StepName(StrEnum):
    PAYMENT = "payment"
    INVENTORY = "inventory"
    SHIPPING = "shipping"
    NOTIFICATION = "notification"


@dataclass(frozen=True)
class Step:
    """One row of the saga table."""

    name: StepName
    context: str  # the bounded context whose queue receives the step's commands
    command: type[Command]
    success: type[m.IntegrationEvent]
    failure: type[m.IntegrationEvent]
    compensation: type[Command] | None
    # Any of these confirms the undoing, including "undone before it was done"
    # (a void, a release remembered before the reservation, a shipment created cancelled).
    compensated_by: tuple[type[m.IntegrationEvent], ...]
    failed_as: str  # how a business failure reads in the order's cancellation reason
    failure_stops_saga: bool = True

    @property
    def compensable(self) -> bool:
        return self.compensation is not None


STEPS: tuple[Step, ...] = (
    Step(StepName.PAYMENT, "payments", ChargePayment, m.PaymentCharged, m.PaymentDeclined,
         RefundPayment, (m.PaymentRefunded, m.PaymentVoided), "payment declined"),
    Step(StepName.INVENTORY, "inventory", ReserveStock, m.StockReserved, m.StockReservationRejected,
         ReleaseStock, (m.StockReleased,), "stock reservation rejected"),
    Step(StepName.SHIPPING, "shipping", CreateShipment, m.ShipmentCreated, m.ShipmentFailed,
         CancelShipment, (m.ShipmentCancelled,), "shipment failed"),
    # Not critical: a failed or late notification is recorded and the order completes anyway.
    Step(StepName.NOTIFICATION, "notifications", SendNotification, m.NotificationSent,
         m.NotificationFailed, None, (), "notification failed", failure_stops_saga=False),
)

BY_NAME: dict[StepName, Step] = {step.name: step for step in STEPS}
FIRST_STEP = STEPS[0].name


@dataclass(frozen=True)
class FollowUp:
    """A command the saga sends between or after its steps, and the event that confirms it."""

    context: str
    command: type[Command]
    confirmed_by: type[m.IntegrationEvent]


# After shipping succeeds, the reserved stock is committed as sold; the next step
# starts once the commit is confirmed. This is the saga's point of no return: sold
# stock cannot be released, so a cancellation asked for later is declined.
COMMIT_STOCK_AFTER = StepName.SHIPPING
COMMIT_STOCK = FollowUp("inventory", CommitStock, m.StockCommitted)

# After the last step ends (the notification: sent, failed or timed out) the order is completed.
COMPLETE_ORDER = FollowUp("orders", CompleteOrder, m.OrderCompleted)

# When everything done is undone, the order is cancelled; the saga ends when it is.
CANCEL_ORDER = FollowUp("orders", CancelOrder, m.OrderCancelled)


def step_named(name: StepName) -> Step:
    return BY_NAME[name]


def next_step(name: StepName) -> StepName | None:
    """The step after `name`, or None after the last."""
    index = STEPS.index(BY_NAME[name]) + 1
    return STEPS[index].name if index < len(STEPS) else None


def steps_before(name: StepName | None) -> tuple[Step, ...]:
    """The steps before `name` (all of them for None), latest first: the order of undoing."""
    end = len(STEPS) if name is None else STEPS.index(BY_NAME[name])
    return tuple(reversed(STEPS[:end]))


def succeeded_step(event: m.IntegrationEvent) -> Step | None:
    return next((s for s in STEPS if type(event) is s.success), None)


def failed_step(event: m.IntegrationEvent) -> Step | None:
    return next((s for s in STEPS if type(event) is s.failure), None)


def compensated_step(event: m.IntegrationEvent) -> Step | None:
    return next((s for s in STEPS if type(event) in s.compensated_by), None)

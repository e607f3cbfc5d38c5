"""One line of plain words per stored event, and whether it tells of a failure or an undoing.

An auditor reads a timeline of dozens of events from six streams; the type alone
("OrderFulfillment.StepRequested") does not say which step or why, and the full
data is too much to scan. Summaries work from the stored JSON data and the type
name, the persisted contract, so they need no event class and cannot fail on an
event recorded by an older or newer version: an unknown type lists its fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

Data = Mapping[str, Any]

MAX_TEXT = 80  # reasons may run to 500 characters; a table cell shows the start
SHOWN_LINES = 3  # an order may have a hundred lines; the data holds them all


class Flag(StrEnum):
    """What kind of turn an event marks in the order's story, for colouring and filtering."""

    FAILURE = "failure"
    COMPENSATION = "compensation"
    COMPLETION = "completion"


FLAGS: dict[str, Flag] = {
    **dict.fromkeys(
        ("Payment.Declined", "Reservation.Rejected", "Shipment.Failed", "Notification.Failed",
         "OrderFulfillment.StepFailed", "OrderFulfillment.StepTimedOut",
         "OrderFulfillment.CancellationDeclined"),
        Flag.FAILURE,
    ),
    **dict.fromkeys(
        ("Order.CancellationRequested", "Order.Cancelled", "Payment.Refunded", "Payment.Voided",
         "Reservation.Released", "Reservation.ReleasedBeforeReserved", "Shipment.Cancelled",
         "OrderFulfillment.CompensationStarted", "OrderFulfillment.CompensationRequested",
         "OrderFulfillment.StepCompensated", "OrderFulfillment.CancellationRequested",
         "OrderFulfillment.Compensated"),
        Flag.COMPENSATION,
    ),
    **dict.fromkeys(("Order.Completed", "OrderFulfillment.Completed"), Flag.COMPLETION),
}


def flag_of(event_type: str) -> Flag | None:
    return FLAGS.get(event_type)


def summarise(event_type: str, data: Data) -> str:
    """A short sentence about the event; never raises, whatever the data holds."""
    describe = SUMMARIES.get(event_type)
    try:
        text = describe(data) if describe else _fields(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        text = _fields(data)
    command = data.get("command")
    if isinstance(command, Mapping) and "type" in command:
        text += f" -> {command['type']}"
    return text


def _text(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _money(value: Data) -> str:
    return f"{value['amount']} {value['currency']}"


def _fields(data: Data) -> str:
    shown = [f"{key}={_text(value)}" for key, value in data.items() if not isinstance(value, dict | list)]
    return _text(", ".join(shown)) if shown else ""


def _lines(lines: list[Data]) -> str:
    # Product ids in full: the seed catalogue's differ only in their last digits.
    shown = ", ".join(f"{line['quantity']} x {line['product_id']}" for line in lines[:SHOWN_LINES])
    more = len(lines) - SHOWN_LINES
    return f"{shown} and {more} more line(s)" if more > 0 else shown


def _placed(d: Data) -> str:
    address = d["shipping_address"]
    return f"{len(d['lines'])} line(s), {_money(d['total'])}, to {address['city']} {address['country']}"


def _rejected(d: Data) -> str:
    return f"rejected ({d['code']}): {_text(d['reason'])}"


SUMMARIES: dict[str, Callable[[Data], str]] = {
    "Order.Placed": _placed,
    "Order.CancellationRequested": lambda d: f"customer asks to cancel: {_text(d['reason'])}",
    "Order.Cancelled": lambda d: f"cancelled: {_text(d['reason'])}",
    "Order.Completed": lambda d: "completed",
    "Order.PersonalDataErased": lambda d: f"personal data erased, by {_text(d['requested_by'])}",
    "Product.Heard": lambda d: f"heard Inventory list {_text(d['name'])} at {_money(d['price'])}",
    "Payment.Charged": lambda d: f"charged {_money(d['amount'])}, transaction {d['transaction_id']}",
    "Payment.Declined": lambda d: f"declined {_money(d['amount'])}: {_text(d['reason'])}",
    "Payment.Voided": lambda d: f"voided before any charge: {_text(d['reason'])}",
    "Payment.Refunded": lambda d: f"refunded {_money(d['amount'])} ({d['reference']}): {_text(d['reason'])}",
    "Reservation.Opened": lambda d: "opened",
    "Reservation.Reserved": lambda d: f"reserved {_lines(d['lines'])}",
    "Reservation.Rejected": _rejected,
    "Reservation.Released": lambda d: "released: the units are available again",
    "Reservation.ReleasedBeforeReserved": lambda d: "released before reserved: a late reservation is refused",
    "Reservation.Committed": lambda d: "sold: the units leave the warehouse",
    "Shipment.Created": lambda d: f"booked to {d['address']['city']}, tracking {d['tracking_number']}",
    "Shipment.Failed": lambda d: f"failed: {_text(d['reason'])}",
    "Shipment.Cancelled": lambda d: f"cancelled: {_text(d['reason'])}",
    "Shipment.Dispatched": lambda d: "dispatched",
    "Shipment.Delivered": lambda d: "delivered",
    "Notification.Sent": lambda d: f"{d['channel']} sent: {_text(d['subject'])}",
    "Notification.Failed": lambda d: f"{d['channel']} failed: {_text(d['reason'])}",
    "OrderFulfillment.Started": lambda d: f"started: {len(d['lines'])} line(s), {_money(d['total'])}",
    "OrderFulfillment.StepRequested": lambda d: f"{d['step']} requested (attempt {d['attempt']})",
    "OrderFulfillment.StepSucceeded": lambda d: f"{d['step']} succeeded",
    "OrderFulfillment.StepFailed": lambda d: f"{d['step']} failed: {_text(d['reason'])}",
    "OrderFulfillment.StepTimedOut": lambda d: f"{d['step']} timed out (attempt {d['attempt']})",
    "OrderFulfillment.CompensationStarted": lambda d: f"undoing the order: {_text(d['reason'])}",
    "OrderFulfillment.CompensationRequested": lambda d: f"undo {d['step']}",
    "OrderFulfillment.StepCompensated": lambda d: f"{d['step']} undone",
    "OrderFulfillment.StockCommitRequested": lambda d: "commit the reserved stock",
    "OrderFulfillment.CompletionRequested": lambda d: "complete the order",
    "OrderFulfillment.CancellationRequested": lambda d: "cancel the order",
    "OrderFulfillment.CancellationDeclined": lambda d: f"cancellation declined: {_text(d['reason'])}",
    "OrderFulfillment.Completed": lambda d: "fulfilled",
    "OrderFulfillment.Compensated": lambda d: f"every step undone: {_text(d['reason'])}",
}

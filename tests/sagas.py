"""Scenarios for the order-fulfilment saga: an order, the replies it hears, and the commands it sends.

    given(*story(charged(o))).when(hears(reserved(o))).then(
        ev(Saga.StepSucceeded, step="inventory"),
        ev(Saga.StepRequested, step="shipping", command=sends("CreateShipment", address=...)))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from pydantic_core import to_jsonable_python

from commands.contract import messages as m
from domain.values import Address, Money
from process_managers.outgoing import SagaCommand
from process_managers.saga import OrderFulfillment
from process_managers.steps import StepName

Saga = OrderFulfillment
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=30)
ADDRESS = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")


@dataclass(frozen=True)
class Order:
    """One order's facts and the replies the contexts send about it."""

    order_id: UUID
    customer_id: UUID
    product_ids: tuple[UUID, UUID]

    @classmethod
    def new(cls) -> Order:
        return cls(uuid4(), uuid4(), (uuid4(), uuid4()))

    @property
    def saga_id(self) -> UUID:
        return Saga.create_id(self.order_id)

    def placed(self) -> m.OrderPlaced:
        first, second = self.product_ids
        return m.OrderPlaced(
            order_id=self.order_id,
            customer_id=self.customer_id,
            lines=(
                m.OrderLineFact(product_id=first, quantity=2, unit_price=Decimal("1299.99")),
                m.OrderLineFact(product_id=second, quantity=1, unit_price=Decimal("49.99")),
            ),
            total=Money.of("2649.97"),
            shipping_address=ADDRESS,
        )

    def charged(self) -> m.PaymentCharged:
        return m.PaymentCharged(order_id=self.order_id, amount=Money.of("2649.97"), transaction_id="txn_1")

    def declined(self, reason: str = "insufficient funds") -> m.PaymentDeclined:
        return m.PaymentDeclined(order_id=self.order_id, reason=reason)

    def refunded(self) -> m.PaymentRefunded:
        return m.PaymentRefunded(order_id=self.order_id, amount=Money.of("2649.97"), reference="rf_1")

    def voided(self) -> m.PaymentVoided:
        return m.PaymentVoided(order_id=self.order_id, reason="payment timed out")

    def reserved(self) -> m.StockReserved:
        return m.StockReserved(order_id=self.order_id)

    def rejected(self, reason: str = "Laptop Pro 15: 2 requested, 1 available") -> m.StockReservationRejected:
        return m.StockReservationRejected(order_id=self.order_id, code="INSUFFICIENT_STOCK", reason=reason)

    def released(self) -> m.StockReleased:
        return m.StockReleased(order_id=self.order_id)

    def committed(self) -> m.StockCommitted:
        return m.StockCommitted(order_id=self.order_id)

    def shipped(self, tracking_number: str = "TRK123") -> m.ShipmentCreated:
        return m.ShipmentCreated(order_id=self.order_id, tracking_number=tracking_number)

    def shipment_failed(self, reason: str = "no carrier capacity") -> m.ShipmentFailed:
        return m.ShipmentFailed(order_id=self.order_id, reason=reason)

    def shipment_cancelled(self) -> m.ShipmentCancelled:
        return m.ShipmentCancelled(order_id=self.order_id, reason="order cancelled")

    def notified(self) -> m.NotificationSent:
        return m.NotificationSent(order_id=self.order_id)

    def notification_failed(self) -> m.NotificationFailed:
        return m.NotificationFailed(order_id=self.order_id, reason="mailbox unavailable")

    def completed(self) -> m.OrderCompleted:
        return m.OrderCompleted(order_id=self.order_id)

    def cancel_requested(self, reason: str = "changed my mind") -> m.OrderCancellationRequested:
        return m.OrderCancellationRequested(order_id=self.order_id, reason=reason)

    def cancelled(self, reason: str = "cancelled") -> m.OrderCancelled:
        return m.OrderCancelled(order_id=self.order_id, reason=reason)

    def happy_replies(self) -> list[m.IntegrationEvent]:
        return [self.charged(), self.reserved(), self.shipped(), self.committed(), self.notified()]


@dataclass(frozen=True)
class Deadline:
    """A step's deadline passing, as a scheduler would report it."""

    step: StepName
    attempt: int = 1
    at: datetime = T0 + TIMEOUT


Happening = m.IntegrationEvent | Deadline


def saga_after(order: Order, *happenings: Happening) -> OrderFulfillment:
    """The order's saga, started at T0, after hearing each happening in turn."""
    saga = Saga.start(order.placed(), now=T0, step_timeout=TIMEOUT)
    for happening in happenings:
        _hear(saga, happening)
    return saga


def story(order: Order, *happenings: Happening) -> list[Any]:
    """The saga's events after the happenings, for `given(...)`."""
    return list(saga_after(order, *happenings).collect_events())


def hears(happening: Happening) -> Callable[[OrderFulfillment], object]:
    return lambda saga: _hear(saga, happening)


def _hear(saga: OrderFulfillment, happening: Happening) -> bool:
    if isinstance(happening, Deadline):
        return saga.time_out(happening.step, happening.attempt, happening.at, step_timeout=TIMEOUT)
    return saga.on(happening, now=T0, step_timeout=TIMEOUT)


class sends:
    """Matches a SagaCommand by its type and the payload fields named (as JSON)."""

    def __init__(self, type_: str, **payload: Any) -> None:
        self.type = type_
        self.payload = {key: to_jsonable_python(value) for key, value in payload.items()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SagaCommand) or other.type != self.type:
            return False
        return all(other.payload.get(key) == value for key, value in self.payload.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.payload.items())
        return f"sends({self.type!r}{', ' if fields else ''}{fields})"


def commands_in(events: list[Any]) -> list[SagaCommand]:
    """The commands carried by saga events, in order: what a relay would publish."""
    return [e.command for e in events if getattr(e, "command", None) is not None]

"""Integration messages: what crosses the bus between contexts.

They are versioned pydantic models of their own, not the domain events, so a
context can change its events without breaking its neighbours. Every message
travels in an `Envelope` whose correlation id is the order id on every hop.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.values import Address, Money


class Envelope(BaseModel):
    """One message on the bus, its payload a versioned integration message or command."""

    model_config = ConfigDict(frozen=True)

    message_id: str
    type: str
    kind: Literal["event", "command"]
    schema_version: int = 1
    correlation_id: UUID | None = None
    causation_id: str | None = None
    occurred_at: datetime
    source: str
    position: int
    routing_key: str
    payload: dict[str, Any]
    trace: dict[str, str] | None = None
    """W3C trace context (`traceparent`, `tracestate`), so every hop of an order shares one trace."""


class Fact(BaseModel):
    """Base of the facts one context tells the others: about an order, or about the catalogue."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    context: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @classmethod
    def routing_key(cls) -> str:
        return f"{cls.context}.{cls.__name__}"


class IntegrationEvent(Fact):
    """A fact about one order: what the saga hears."""

    order_id: UUID


class ProductListed(Fact):
    """Inventory listed a product: the name and price other contexts keep of it (Orders prices from it)."""

    context = "inventory"
    product_id: UUID
    name: str
    price: Money


class OrderLineFact(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: UUID
    quantity: int
    unit_price: Decimal


class OrderPlaced(IntegrationEvent):
    context = "orders"
    customer_id: UUID
    lines: tuple[OrderLineFact, ...]
    total: Money
    shipping_address: Address


class OrderCancellationRequested(IntegrationEvent):
    context = "orders"
    reason: str


class OrderCompleted(IntegrationEvent):
    context = "orders"


class OrderCancelled(IntegrationEvent):
    context = "orders"
    reason: str


class PaymentCharged(IntegrationEvent):
    context = "payments"
    amount: Money
    transaction_id: str


class PaymentDeclined(IntegrationEvent):
    context = "payments"
    reason: str


class PaymentRefunded(IntegrationEvent):
    context = "payments"
    amount: Money
    reference: str


class PaymentVoided(IntegrationEvent):
    """A refund arrived before any charge: nothing was taken, and a late charge takes nothing."""

    context = "payments"
    reason: str


class StockReserved(IntegrationEvent):
    context = "inventory"


class StockReservationRejected(IntegrationEvent):
    context = "inventory"
    code: str
    reason: str


class StockReleased(IntegrationEvent):
    """Released, or a release remembered before any reservation: either way nothing is held."""

    context = "inventory"


class StockCommitted(IntegrationEvent):
    context = "inventory"


class ShipmentCreated(IntegrationEvent):
    context = "shipping"
    tracking_number: str


class ShipmentFailed(IntegrationEvent):
    context = "shipping"
    reason: str


class ShipmentCancelled(IntegrationEvent):
    context = "shipping"
    reason: str


class NotificationSent(IntegrationEvent):
    context = "notifications"


class NotificationFailed(IntegrationEvent):
    context = "notifications"
    reason: str


INTEGRATION_EVENTS: dict[str, type[IntegrationEvent]] = {
    cls.__name__: cls
    for cls in (
        OrderPlaced, OrderCancellationRequested, OrderCompleted, OrderCancelled,
        PaymentCharged, PaymentDeclined, PaymentRefunded, PaymentVoided,
        StockReserved, StockReservationRejected, StockReleased, StockCommitted,
        ShipmentCreated, ShipmentFailed, ShipmentCancelled,
        NotificationSent, NotificationFailed,
    )
}
"""The facts about orders, by name: what the saga hears."""

CATALOGUE_EVENTS: dict[str, type[Fact]] = {ProductListed.__name__: ProductListed}
"""The facts about the catalogue, by name: what Orders keeps a catalogue of its own from."""

FACTS: dict[str, type[Fact]] = {**INTEGRATION_EVENTS, **CATALOGUE_EVENTS}
"""Every fact the contract knows: a consumer acknowledges one it does not hear, and parks one unknown."""

"""From each context's domain events to the integration events its neighbours hear.

Events with no translation stay inside their context (a Stock's per-product
moves, a shipment's dispatch). A product's listing is told too: Orders keeps the
names and prices it prices orders from, and never reads Inventory's store. The
correlation id of every saga-related event is its order id, which lets events
that do not repeat the order id be translated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from commands.contract import messages as m
from domain.base import DomainEvent
from domain.notification import Notification
from domain.order import Order
from domain.payment import Payment
from domain.reservation import Reservation
from domain.shipment import Shipment
from domain.stock import Stock


def _order_id(event: Any) -> UUID:
    order_id = getattr(event, "order_id", None) or event.correlation_id
    if order_id is None:
        raise ValueError(f"{type(event).__qualname__} {event.originator_id} names no order")
    assert isinstance(order_id, UUID)
    return order_id


def _placed(e: Order.Placed) -> m.OrderPlaced:
    return m.OrderPlaced(
        order_id=e.originator_id,
        customer_id=e.customer_id,
        lines=tuple(
            m.OrderLineFact(product_id=x.product_id, quantity=x.quantity, unit_price=x.unit_price.amount)
            for x in e.lines
        ),
        total=e.total,
        shipping_address=e.shipping_address,
    )


def _reservation_rejected(e: Reservation.Rejected) -> m.StockReservationRejected:
    return m.StockReservationRejected(order_id=e.order_id, code=e.code, reason=e.reason)


TRANSLATIONS: dict[type[Any], Callable[[Any], m.Fact]] = {
    Order.Placed: _placed,
    Order.CancellationRequested: lambda e: m.OrderCancellationRequested(
        order_id=e.originator_id, reason=e.reason
    ),
    Order.Completed: lambda e: m.OrderCompleted(order_id=e.originator_id),
    Order.Cancelled: lambda e: m.OrderCancelled(order_id=e.originator_id, reason=e.reason),
    Payment.Charged: lambda e: m.PaymentCharged(
        order_id=e.order_id, amount=e.amount, transaction_id=e.transaction_id
    ),
    Payment.Declined: lambda e: m.PaymentDeclined(order_id=e.order_id, reason=e.reason),
    Payment.Refunded: lambda e: m.PaymentRefunded(
        order_id=_order_id(e), amount=e.amount, reference=e.reference
    ),
    Payment.Voided: lambda e: m.PaymentVoided(order_id=e.order_id, reason=e.reason),
    Stock.Listed: lambda e: m.ProductListed(product_id=e.originator_id, name=e.name, price=e.price),
    Reservation.Reserved: lambda e: m.StockReserved(order_id=e.order_id),
    Reservation.Rejected: _reservation_rejected,
    Reservation.Released: lambda e: m.StockReleased(order_id=e.order_id),
    Reservation.ReleasedBeforeReserved: lambda e: m.StockReleased(order_id=e.order_id),
    Reservation.Committed: lambda e: m.StockCommitted(order_id=e.order_id),
    Shipment.Created: lambda e: m.ShipmentCreated(
        order_id=e.order_id, tracking_number=e.tracking_number
    ),
    Shipment.Failed: lambda e: m.ShipmentFailed(order_id=e.order_id, reason=e.reason),
    Shipment.Cancelled: lambda e: m.ShipmentCancelled(order_id=e.order_id, reason=e.reason),
    Notification.Sent: lambda e: m.NotificationSent(order_id=e.order_id),
    Notification.Failed: lambda e: m.NotificationFailed(order_id=e.order_id, reason=e.reason),
}


def to_integration_event(event: DomainEvent) -> m.Fact | None:
    """The integration event a domain event is published as, or None if it stays private."""
    translate = TRANSLATIONS.get(type(event))
    return translate(event) if translate else None

"""What each order was charged, and what was given back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.payment import Payment
from domain.values import DEFAULT_CURRENCY
from projections.facts import Fact
from projections.projection import CannotApplyError, Projection, changed, require
from projections.read_model import PaymentRow
from projections.store import Index, Row, TableSpec, as_decimal, as_optional_time, as_time, as_uuid

CHARGED, DECLINED = get_topic(Payment.Charged), get_topic(Payment.Declined)
VOIDED, REFUNDED = get_topic(Payment.Voided), get_topic(Payment.Refunded)
ZERO = Decimal("0.00")


def evolve(row: PaymentRow | None, fact: Fact) -> PaymentRow:
    """A payment after one of its events; the statuses follow the Payment aggregate's."""
    data, at = fact.data, fact.timestamp
    if fact.topic == CHARGED:
        amount = data["amount"]
        return PaymentRow(
            id=fact.originator_id, order_id=UUID(data["order_id"]), status="COMPLETED",
            amount=Decimal(amount["amount"]), currency=amount["currency"],
            transaction_id=data["transaction_id"], refunded_amount=ZERO, created_at=at, updated_at=at,
            processed_at=at,
        )
    if fact.topic == DECLINED:  # opens the payment, or follows a void (a late charge refused)
        amount = data["amount"]
        return PaymentRow(
            id=fact.originator_id, order_id=UUID(data["order_id"]), status="FAILED",
            amount=Decimal(amount["amount"]), currency=amount["currency"], transaction_id=None,
            refunded_amount=ZERO, created_at=at if row is None else row.created_at, updated_at=at,
            failure_reason=data["reason"], processed_at=at,
        )
    if fact.topic == VOIDED:  # a refund came before any charge: nothing was taken
        return PaymentRow(
            id=fact.originator_id, order_id=UUID(data["order_id"]), status="VOIDED", amount=ZERO,
            currency=DEFAULT_CURRENCY, transaction_id=None, refunded_amount=ZERO, created_at=at,
            updated_at=at, failure_reason=data["reason"],
        )
    if fact.topic == REFUNDED:
        payment = require(row, fact)
        refunded = payment.refunded_amount + Decimal(data["amount"]["amount"])
        status = "REFUNDED" if refunded == payment.amount else payment.status
        return changed(payment, refunded_amount=refunded, status=status, updated_at=at,
                       refund_reference=data["reference"], refunded_at=at)
    raise CannotApplyError(f"payment status does not read {fact.topic}")


class PaymentStatus(Projection[PaymentRow]):
    name = "payment_status"
    applications = ("Payments",)
    topics = frozenset({CHARGED, DECLINED, VOIDED, REFUNDED})
    base_table = TableSpec(
        "read_payments",
        (("id", "uuid"), ("order_id", "uuid"), ("status", "text"), ("amount", "money"),
         ("currency", "text"), ("transaction_id", "text"), ("refunded_amount", "money"),
         ("created_at", "ts"), ("updated_at", "ts"), ("failure_reason", "text"),
         ("refund_reference", "text"), ("processed_at", "ts"), ("refunded_at", "ts")),
        ("id",),
        (Index("order_idx", "order_id"),),
    )

    def evolve(self, row: PaymentRow | None, fact: Fact) -> PaymentRow:
        return evolve(row, fact)

    def order_of(self, row: PaymentRow) -> UUID | None:
        return row.order_id

    def encode(self, row: PaymentRow) -> tuple[Any, ...]:
        return (row.id, row.order_id, row.status, row.amount, row.currency, row.transaction_id,
                row.refunded_amount, row.created_at, row.updated_at, row.failure_reason,
                row.refund_reference, row.processed_at, row.refunded_at)

    def decode(self, record: Row) -> PaymentRow:
        return PaymentRow(
            id=as_uuid(record["id"]), order_id=as_uuid(record["order_id"]), status=record["status"],
            amount=as_decimal(record["amount"]), currency=record["currency"],
            transaction_id=record["transaction_id"], refunded_amount=as_decimal(record["refunded_amount"]),
            created_at=as_time(record["created_at"]), updated_at=as_time(record["updated_at"]),
            failure_reason=record["failure_reason"], refund_reference=record["refund_reference"],
            processed_at=as_optional_time(record["processed_at"]),
            refunded_at=as_optional_time(record["refunded_at"]),
        )

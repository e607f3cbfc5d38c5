"""The Payment aggregate (payments context): one per order, ever.

Its id derives from the order id, so every charge or refund for an order finds
the same payment. A refund that overtakes its charge voids the payment first,
and the late charge is then recorded as declined: no money is taken.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from domain.base import Aggregate, InvalidStateError, OpensOrFollows, ValidationError, kept_ids
from domain.values import Money

CANCELLED_BEFORE_PAYMENT = "order was cancelled before payment"



class PaymentStatus(StrEnum):
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"  # refunded before any charge; a later charge is declined


class RefundExceedsChargeError(ValidationError):
    code = "REFUND_EXCEEDS_CHARGE"


class PaymentNotChargedError(InvalidStateError):
    """The payment was declined: no money was taken, so none can be returned."""

    code = "PAYMENT_NOT_CHARGED"


class Payment(Aggregate):
    """The money taken for one order, and what has been given back."""

    class Charged(Aggregate.Created):
        order_id: UUID
        customer_id: UUID
        amount: Money
        transaction_id: str

        def apply(self, payment: Payment) -> None:
            payment.status = PaymentStatus.COMPLETED
            payment.amount = self.amount
            payment.refunded = Money.zero(self.amount.currency)
            payment.transaction_id = self.transaction_id

    class Declined(OpensOrFollows):
        order_id: UUID
        customer_id: UUID
        amount: Money
        reason: str

        def apply(self, payment: Payment) -> None:
            payment.status = PaymentStatus.FAILED
            payment.amount = self.amount
            payment.refunded = Money.zero(self.amount.currency)
            payment.reason = self.reason

    class Voided(Aggregate.Created):
        order_id: UUID
        reason: str

        def apply(self, payment: Payment) -> None:
            payment.status = PaymentStatus.VOIDED
            payment.reason = self.reason

    class Refunded(Aggregate.Event):
        amount: Money
        reference: str
        reason: str

    @staticmethod
    @kept_ids
    def create_id(order_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/payments/{order_id}")

    @classmethod
    def charge(
        cls, order_id: UUID, customer_id: UUID, amount: Money, transaction_id: str
    ) -> Payment:
        """Record money taken by the gateway."""
        _require_positive(amount)
        return cls._open(
            cls.Charged, order_id, customer_id=customer_id, amount=amount,
            transaction_id=transaction_id,
        )

    @classmethod
    def decline(cls, order_id: UUID, customer_id: UUID, amount: Money, reason: str) -> Payment:
        """Record a charge the gateway refused: a business outcome, not an error."""
        _require_positive(amount)
        return cls._open(
            cls.Declined, order_id, customer_id=customer_id, amount=amount, reason=reason
        )

    @classmethod
    def void(cls, order_id: UUID, reason: str) -> Payment:
        """Remember a refund that arrived before any charge, so a late charge takes nothing."""
        return cls._open(cls.Voided, order_id, reason=reason)

    @classmethod
    def _open(cls, event_class: type[Aggregate.Created], order_id: UUID, **fields: Any) -> Payment:
        payment: Payment = cls._create(
            event_class, id=cls.create_id(order_id), order_id=order_id, **fields
        )
        return payment

    def __init__(self, order_id: UUID) -> None:
        # The creation event's apply() sets the status and what was charged.
        self.order_id = order_id
        self.status: PaymentStatus
        self.amount: Money | None = None
        self.refunded: Money | None = None
        self.transaction_id: str | None = None
        self.reason: str | None = None

    def refuse_charge(self, customer_id: UUID, amount: Money) -> None:
        """A further charge for this order never takes money.

        After a void it is recorded as declined, so whoever asked learns the
        outcome; after a charge or a decline it changes nothing.
        """
        if self.status is not PaymentStatus.VOIDED:
            return
        _require_positive(amount)
        self.trigger_event(
            self.Declined,
            order_id=self.order_id,
            customer_id=customer_id,
            amount=amount,
            reason=CANCELLED_BEFORE_PAYMENT,
            originator_topic=OpensOrFollows.topic_of(self),
        )

    def refundable(self, requested: Money | None) -> Money | None:
        """What a refund of `requested` (None: all that is left) gives back; None if nothing."""
        if requested is not None:
            _require_positive(requested)
        if self.status is PaymentStatus.VOIDED:
            return None  # the void already stands for any refund
        if self.amount is None or self.refunded is None or self.status is PaymentStatus.FAILED:
            raise PaymentNotChargedError(
                f"the payment for order {self.order_id} was declined; nothing to refund",
                field="order_id",
            )
        left = self.amount - self.refunded
        if requested is None:
            return left if left.is_positive() else None
        if left < requested:
            raise RefundExceedsChargeError(
                f"cannot refund {requested}: only {left} of the charge is left", field="amount"
            )
        return requested

    def refund(self, amount: Money, reference: str, reason: str) -> None:
        """Give back part or all of the charge; never more than is left."""
        if self.refundable(amount) is None:
            return
        self._refunded(amount=amount, reference=reference, reason=reason)

    @event(Refunded)
    def _refunded(self, amount: Money, reference: str, reason: str) -> None:
        self.refunded = amount if self.refunded is None else self.refunded + amount
        if self.refunded == self.amount:
            self.status = PaymentStatus.REFUNDED


def _require_positive(amount: Money) -> None:
    if not amount.is_positive():
        raise ValidationError(f"an amount must be positive, got {amount}", field="amount")


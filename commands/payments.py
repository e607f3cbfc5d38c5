"""The payments context: charging an order once, and giving money back.

The gateway is called from inside `decide`, after the payment has been loaded,
so an order that already has a payment (charged, declined or voided) never
reaches the gateway again. `decide` also runs for a redelivered command and
after a write conflict, so every gateway call carries an idempotency key: the
order id for a charge, and for a refund the payment and its version, so that
two refunds racing for the same money are one refund at the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated
from uuid import UUID, uuid5

from pydantic import Field

from commands.base import ContextApplication
from commands.command import Command, handles
from commands.simulation import Approved, PaymentGateway
from domain.base import NotFoundError
from domain.payment import Payment, PaymentStatus
from domain.values import DEFAULT_CURRENCY, Amount, Currency, Money

Reason = Annotated[str, Field(min_length=1, max_length=500)]


class ChargePayment(Command):
    order_id: UUID
    customer_id: UUID
    amount: Amount
    currency: Currency = DEFAULT_CURRENCY


class RefundPayment(Command):
    order_id: UUID
    amount: Amount | None = Field(default=None, description="None refunds all that is left")
    reason: Reason


class PaymentNotFoundError(NotFoundError):
    code = "PAYMENT_NOT_FOUND"


class Payments(ContextApplication):
    """Takes each order's money at most once and refunds it on request."""

    name = "Payments"

    def __init__(self, env: Mapping[str, str] | None = None, *, gateway: PaymentGateway) -> None:
        super().__init__(env)
        self.gateway = gateway

    @handles(ChargePayment)
    def charge_payment(self, command: ChargePayment) -> bool:
        """Charge the order, or record the decline; a second charge for it changes nothing.

        Returns False when this very command had already been handled.
        """
        amount = Money(amount=command.amount, currency=command.currency)

        def decide() -> list[Payment]:
            payment = self.find(Payment.create_id(command.order_id), Payment)
            if payment is None:
                return [self._charge(command.order_id, command.customer_id, amount)]
            payment.refuse_charge(command.customer_id, amount)
            return [payment]

        return self.execute(command, decide, correlation_id=command.order_id)

    @handles(RefundPayment)
    def refund_payment(self, command: RefundPayment) -> bool:
        """Give back the amount, or all that is left; before any charge, void the payment.

        Returns False when this very command had already been handled.
        """

        def decide() -> list[Payment]:
            payment = self.find(Payment.create_id(command.order_id), Payment)
            if payment is None:
                return [Payment.void(command.order_id, command.reason)]
            if payment.status is PaymentStatus.FAILED:
                # A compensation asks that no money be held: a declined charge held none.
                return []
            # Asked after the load: the tracking row commits with the refund, so a payment
            # that shows this refund shows the command as handled too, and one that does
            # not yet gives the gateway the same key as the first attempt did.
            if self.has_handled(command):
                return []
            self._refund(payment, command)
            return [payment]

        return self.execute(command, decide, correlation_id=command.order_id)

    def order_streams(self, order_id: UUID) -> dict[str, UUID]:
        return {"payment": Payment.create_id(order_id)}

    def get_payment(self, order_id: UUID, *, version: int | None = None) -> Payment:
        payment = self.find(Payment.create_id(order_id), Payment, version=version)
        if payment is None:
            raise PaymentNotFoundError(f"no payment for order {order_id}", field="order_id")
        return payment

    def _charge(self, order_id: UUID, customer_id: UUID, amount: Money) -> Payment:
        result = self.gateway.charge(order_id=order_id, customer_id=customer_id, amount=amount)
        if isinstance(result, Approved):
            return Payment.charge(order_id, customer_id, amount, result.transaction_id)
        return Payment.decline(order_id, customer_id, amount, result.reason)

    def _refund(self, payment: Payment, command: RefundPayment) -> None:
        requested = None
        if command.amount is not None and payment.amount is not None:
            requested = Money(amount=command.amount, currency=payment.amount.currency)
        amount = payment.refundable(requested)
        if amount is None or payment.transaction_id is None:
            return
        reference = self.gateway.refund(
            transaction_id=payment.transaction_id,
            amount=amount,
            key=uuid5(payment.id, f"refund-after-v{payment.version}"),
        )
        payment.refund(amount, reference, command.reason)

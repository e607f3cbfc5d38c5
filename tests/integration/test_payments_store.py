"""Payments on a real store: written once, run on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from uuid import uuid4

import pytest

from commands.audit.timeline import history
from commands.payments import ChargePayment, Payments, RefundPayment
from domain.payment import CANCELLED_BEFORE_PAYMENT, Payment, PaymentStatus
from domain.values import Money
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from tests.fakes import FakeGateway


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def payments(store_settings: Settings, gateway: FakeGateway) -> Iterator[Payments]:
    app = Payments(application_env(store_settings, "Payments"), gateway=gateway)
    yield app
    app.close()


def charge(amount: str = "1299.99", currency: str = "EUR") -> ChargePayment:
    return ChargePayment(
        order_id=uuid4(), customer_id=uuid4(), amount=Decimal(amount), currency=currency
    )


def test_a_charge_and_its_refund_come_back_from_the_store_with_exact_money(
    payments: Payments,
) -> None:
    command = charge("1299.99", "EUR")
    payments.charge_payment(command)
    payments.refund_payment(
        RefundPayment(order_id=command.order_id, amount=Decimal("0.10"), reason="dented")
    )

    payment = payments.get_payment(command.order_id)

    assert payment.amount == Money.of("1299.99", "EUR")
    assert payment.refunded == Money.of("0.10", "EUR")
    assert isinstance(payment.amount.amount, Decimal)
    assert payment.amount.amount.as_tuple() == Decimal("1299.99").as_tuple()
    assert payment.transaction_id == f"txn_{command.order_id.hex[:8]}"
    trail = history(payments, payment.id)
    assert trail[1].data["amount"] == {"amount": "0.10", "currency": "EUR"}
    assert {e.correlation_id for e in trail} == {command.order_id}


def test_a_payment_as_of_version_one_shows_the_charge_without_the_refund(
    payments: Payments,
) -> None:
    command = charge("80.00", "USD")
    payments.charge_payment(command)
    payments.refund_payment(RefundPayment(order_id=command.order_id, reason="cancelled"))

    then = payments.get_payment(command.order_id, version=1)
    now = payments.get_payment(command.order_id)

    assert (then.status, then.refunded) == (PaymentStatus.COMPLETED, Money.of("0"))
    assert (now.status, now.refunded) == (PaymentStatus.REFUNDED, Money.of("80.00"))


def test_a_duplicate_charge_has_one_effect_on_a_real_store(
    payments: Payments, gateway: FakeGateway
) -> None:
    command = charge()
    assert payments.charge_payment(command) is True
    assert payments.charge_payment(command) is False
    assert payments.charge_payment(charge().model_copy(update={"order_id": command.order_id}))

    assert [e.type for e in history(payments, Payment.create_id(command.order_id))] == [
        "Payment.Charged"
    ]
    assert gateway.taken == [Money.of("1299.99", "EUR")]


def test_a_void_then_a_late_decline_replay_from_the_store(
    payments: Payments, gateway: FakeGateway
) -> None:
    command = charge()
    payments.refund_payment(RefundPayment(order_id=command.order_id, reason="timed out"))
    payments.charge_payment(command)

    payment = payments.get_payment(command.order_id)

    assert (payment.status, payment.reason) == (PaymentStatus.FAILED, CANCELLED_BEFORE_PAYMENT)
    assert [e.type for e in history(payments, payment.id)] == ["Payment.Voided", "Payment.Declined"]
    assert gateway.charge_calls == 0

"""The payments context's command handlers, over an in-memory store and a fake gateway."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.command import parse_command
from commands.payments import ChargePayment, PaymentNotFoundError, Payments, RefundPayment
from domain.base import ValidationError
from domain.payment import (
    CANCELLED_BEFORE_PAYMENT,
    Payment,
    PaymentStatus,
    RefundExceedsChargeError,
)
from domain.values import Money
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from tests.dsl import ev, given
from tests.fakes import FakeGateway


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def payments(memory_settings: Settings, gateway: FakeGateway) -> Iterator[Payments]:
    app = Payments(application_env(memory_settings, "Payments"), gateway=gateway)
    yield app
    app.close()


def charge(order_id: UUID | None = None, amount: str = "2649.97", **extra: Any) -> ChargePayment:
    return ChargePayment(
        order_id=order_id or uuid4(), customer_id=uuid4(), amount=Decimal(amount), **extra
    )


def refund(order_id: UUID, amount: str | None = None) -> RefundPayment:
    value = None if amount is None else Decimal(amount)
    return RefundPayment(order_id=order_id, amount=value, reason="customer cancelled")


def test_an_approved_charge_records_the_amount_and_the_gateways_transaction(
    payments: Payments, gateway: FakeGateway
) -> None:
    command = charge(currency="EUR")
    outcome = given(app=payments).when(command)
    outcome.then(
        ev(Payment.Charged, id=Payment.create_id(command.order_id), order_id=command.order_id,
           amount=Money.of("2649.97", "EUR"), transaction_id=f"txn_{command.order_id.hex[:8]}")
    )
    assert outcome.events[0].correlation_id == command.order_id
    assert gateway.taken == [Money.of("2649.97", "EUR")]


def test_a_declined_charge_is_recorded_as_an_event_not_raised(memory_settings: Settings) -> None:
    app = Payments(application_env(memory_settings, "Payments"),
                   gateway=FakeGateway(decline="insufficient funds"))
    command = charge(amount="10.00")
    given(app=app).when(command).then(
        ev(Payment.Declined, order_id=command.order_id, amount=Money.of("10.00"),
           reason="insufficient funds")
    )
    assert app.get_payment(command.order_id).status is PaymentStatus.FAILED


def test_a_redelivered_charge_charges_once(payments: Payments, gateway: FakeGateway) -> None:
    command = charge()
    assert payments.charge_payment(command) is True
    given(app=payments).when(command).then_nothing()
    assert payments.charge_payment(command) is False
    assert gateway.taken == [Money.of("2649.97")]
    assert gateway.charge_calls == 1


def test_a_second_charge_for_the_same_order_charges_once(
    payments: Payments, gateway: FakeGateway
) -> None:
    first = charge()
    payments.charge_payment(first)
    given(app=payments).when(charge(first.order_id, amount="1.00")).then_nothing()
    assert gateway.charge_calls == 1
    assert payments.get_payment(first.order_id).amount == Money.of("2649.97")


def test_a_charge_after_a_decline_does_not_try_the_card_again(memory_settings: Settings) -> None:
    declining = FakeGateway(decline="card expired")
    app = Payments(application_env(memory_settings, "Payments"), gateway=declining)
    first = charge()
    app.charge_payment(first)
    given(app=app).when(charge(first.order_id)).then_nothing()
    assert declining.charge_calls == 1


def test_concurrent_charges_for_one_order_record_one_charge(
    payments: Payments, gateway: FakeGateway
) -> None:
    order_id = uuid4()
    gateway.rendezvous = threading.Barrier(2)  # both handlers have loaded "no payment yet"
    threads = [threading.Thread(target=payments.charge_payment, args=(charge(order_id),))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    events = list(payments.events.get(Payment.create_id(order_id)))
    assert [type(e) for e in events] == [Payment.Charged]
    assert len(gateway.taken) == 1


def test_refunds_racing_for_the_same_money_give_it_back_once(
    payments: Payments, gateway: FakeGateway
) -> None:
    command = charge(amount="100.00")
    payments.charge_payment(command)
    gateway.rendezvous = threading.Barrier(2)  # both handlers have loaded the charged payment
    threads = [threading.Thread(target=payments.refund_payment, args=(refund(command.order_id),))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert gateway.returned == [Money.of("100.00")]
    assert payments.get_payment(command.order_id).refunded == Money.of("100.00")


def test_a_full_refund_gives_back_the_whole_charge(
    payments: Payments, gateway: FakeGateway
) -> None:
    command = charge(amount="100.00")
    payments.charge_payment(command)
    given(app=payments).when(refund(command.order_id)).then(
        ev(Payment.Refunded, amount=Money.of("100.00"), reason="customer cancelled")
    )
    assert gateway.returned == [Money.of("100.00")]
    assert payments.get_payment(command.order_id).status is PaymentStatus.REFUNDED


def test_partial_refunds_then_a_full_one_give_back_exactly_the_charge(
    payments: Payments, gateway: FakeGateway
) -> None:
    command = charge(amount="100.00", currency="EUR")
    payments.charge_payment(command)
    payments.refund_payment(refund(command.order_id, "30.00"))
    given(app=payments).when(refund(command.order_id)).then(
        ev(Payment.Refunded, amount=Money.of("70.00", "EUR"))
    )
    assert gateway.returned == [Money.of("30.00", "EUR"), Money.of("70.00", "EUR")]


def test_a_refund_never_exceeds_the_charge_and_moves_no_money(
    payments: Payments, gateway: FakeGateway
) -> None:
    command = charge(amount="100.00")
    payments.charge_payment(command)
    given(app=payments).when(refund(command.order_id, "100.01")).raises(
        RefundExceedsChargeError, field="amount"
    )
    assert gateway.returned == []


def test_a_redelivered_refund_refunds_once(payments: Payments, gateway: FakeGateway) -> None:
    command = charge(amount="100.00")
    payments.charge_payment(command)
    partial = refund(command.order_id, "10.00")
    payments.refund_payment(partial)
    given(app=payments).when(partial).then_nothing()
    assert payments.get_payment(command.order_id).refunded == Money.of("10.00")
    assert gateway.returned == [Money.of("10.00")]


def test_a_second_full_refund_changes_nothing(payments: Payments, gateway: FakeGateway) -> None:
    command = charge()
    payments.charge_payment(command)
    payments.refund_payment(refund(command.order_id))
    given(app=payments).when(refund(command.order_id)).then_nothing()
    assert gateway.returned == [Money.of("2649.97")]


def test_a_refund_for_an_unknown_payment_voids_it_instead_of_failing(payments: Payments) -> None:
    order_id = uuid4()
    given(app=payments).when(refund(order_id)).then(
        ev(Payment.Voided, id=Payment.create_id(order_id), reason="customer cancelled")
    )
    assert payments.get_payment(order_id).status is PaymentStatus.VOIDED


def test_a_refund_of_a_declined_payment_gives_nothing_back_and_is_no_error(
    memory_settings: Settings,
) -> None:
    gateway = FakeGateway(decline="card expired")
    app = Payments(application_env(memory_settings, "Payments"), gateway=gateway)
    command = charge()
    app.charge_payment(command)
    compensation = refund(command.order_id)
    given(app=app).when(compensation).then_nothing()
    assert app.has_handled(compensation)
    assert gateway.returned == []
    assert app.get_payment(command.order_id).status is PaymentStatus.FAILED


def test_a_charge_that_arrives_after_its_refund_takes_no_money(
    payments: Payments, gateway: FakeGateway
) -> None:
    order_id = uuid4()
    payments.refund_payment(refund(order_id))
    given(app=payments).when(charge(order_id, amount="50.00")).then(
        ev(Payment.Declined, order_id=order_id, amount=Money.of("50.00"),
           reason=CANCELLED_BEFORE_PAYMENT)
    )
    assert gateway.charge_calls == 0
    assert payments.get_payment(order_id).status is PaymentStatus.FAILED


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"amount": 10.5}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "-1.00"}, "amount"),
        ({"amount": "1.005"}, "amount"),
        ({"amount": "12"}, None),
        ({"currency": "usd"}, "currency"),
        ({"order_id": "nope"}, "order_id"),
        ({"customer_id": None}, "customer_id"),
    ],
)
def test_a_malformed_charge_names_the_field(data: dict[str, Any], field: str | None) -> None:
    raw = {"order_id": str(uuid4()), "customer_id": str(uuid4()), "amount": "10.00", **data}
    if field is None:
        assert parse_command(ChargePayment, raw).amount == Decimal("12")
        return
    with pytest.raises(ValidationError) as raised:
        parse_command(ChargePayment, raw)
    assert raised.value.field == field


def test_a_malformed_refund_names_the_field() -> None:
    with pytest.raises(ValidationError) as raised:
        parse_command(RefundPayment, {"order_id": str(uuid4()), "amount": "-3", "reason": "x"})
    assert raised.value.field == "amount"


def test_reading_the_payment_of_an_unknown_order_is_a_named_error(payments: Payments) -> None:
    with pytest.raises(PaymentNotFoundError) as raised:
        payments.get_payment(uuid4())
    assert raised.value.field == "order_id"

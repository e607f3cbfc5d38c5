"""The Payment aggregate's rules, as given/when/then over its events."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.base import ValidationError
from domain.payment import (
    CANCELLED_BEFORE_PAYMENT,
    Payment,
    PaymentNotChargedError,
    PaymentStatus,
    RefundExceedsChargeError,
)
from domain.values import Money
from tests.dsl import ev, given

ORDER = uuid4()
CUSTOMER = uuid4()


def charged(amount: str = "100.00", currency: str = "USD") -> ev:
    return ev(
        Payment.Charged, order_id=ORDER, customer_id=CUSTOMER,
        amount=Money.of(amount, currency), transaction_id="txn_1",
    )


def refunded(amount: str) -> ev:
    return ev(Payment.Refunded, amount=Money.of(amount), reference="rf_1", reason="x")


def declined() -> ev:
    return ev(
        Payment.Declined, order_id=ORDER, customer_id=CUSTOMER, amount=Money.of("100.00"),
        reason="insufficient funds",
    )


def voided() -> ev:
    return ev(Payment.Voided, order_id=ORDER, reason="customer cancelled")


def payment_after(*history: ev) -> Payment:
    payment = given(*history).aggregate()
    assert isinstance(payment, Payment)
    return payment


def test_a_charge_records_the_amount_and_the_transaction() -> None:
    given().when(lambda _: Payment.charge(ORDER, CUSTOMER, Money.of("2649.97"), "txn_9")).then(
        ev(Payment.Charged, id=Payment.create_id(ORDER), order_id=ORDER,
           amount=Money.of("2649.97"), transaction_id="txn_9")
    )


def test_every_payment_for_an_order_has_the_same_id_and_other_orders_differ() -> None:
    first = Payment.charge(ORDER, CUSTOMER, Money.of("1"), "a")
    second = Payment.void(ORDER, "r")
    assert first.id == second.id == Payment.create_id(ORDER)
    assert Payment.create_id(uuid4()) != first.id


def test_a_decline_is_an_event_with_its_reason_and_amount_not_an_error() -> None:
    outcome = given().when(
        lambda _: Payment.decline(ORDER, CUSTOMER, Money.of("5.00"), "card expired")
    )
    outcome.then(ev(Payment.Declined, amount=Money.of("5.00"), reason="card expired"))
    assert outcome.result.status is PaymentStatus.FAILED


@pytest.mark.parametrize("amount", ["0", "-1.00"])
def test_a_charge_must_be_positive(amount: str) -> None:
    given().when(lambda _: Payment.charge(ORDER, CUSTOMER, Money.of(amount), "t")).raises(
        ValidationError, field="amount"
    )


def test_a_charged_payment_is_completed_with_nothing_refunded() -> None:
    payment = payment_after(charged("80.00", "EUR"))
    assert payment.status is PaymentStatus.COMPLETED
    assert payment.refunded == Money.of("0", "EUR")


def test_a_partial_refund_gives_back_that_amount_and_leaves_the_payment_completed() -> None:
    given(charged("100.00")).when(lambda p: p.refund(Money.of("30.00"), "rf_7", "damaged box")).then(
        ev(Payment.Refunded, amount=Money.of("30.00"), reference="rf_7", reason="damaged box")
    )
    payment = payment_after(charged("100.00"), refunded("30.00"))
    assert payment.status is PaymentStatus.COMPLETED
    assert payment.refunded == Money.of("30.00")


def test_refunds_that_add_up_to_the_charge_make_the_payment_refunded() -> None:
    payment = payment_after(charged("100.00"), refunded("30.00"), refunded("70.00"))
    assert payment.status is PaymentStatus.REFUNDED


def test_a_refund_can_never_exceed_what_is_left_of_the_charge() -> None:
    given(charged("100.00"), refunded("60.00")).when(
        lambda p: p.refund(Money.of("40.01"), "rf", "x")
    ).raises(RefundExceedsChargeError, field="amount")


def test_a_refund_of_more_than_the_charge_is_refused() -> None:
    given(charged("100.00")).when(lambda p: p.refund(Money.of("100.01"), "rf", "x")).raises(
        RefundExceedsChargeError, field="amount"
    )


def test_a_refund_in_another_currency_is_refused() -> None:
    given(charged("100.00", "EUR")).when(lambda p: p.refund(Money.of("1.00"), "rf", "x")).raises(
        ValidationError, field="currency"
    )


@pytest.mark.parametrize("amount", ["0", "-5"])
def test_a_refund_must_be_positive(amount: str) -> None:
    given(charged()).when(lambda p: p.refund(Money.of(amount), "rf", "x")).raises(
        ValidationError, field="amount"
    )


def test_all_that_is_left_is_what_a_full_refund_returns() -> None:
    payment = payment_after(charged("100.00"), refunded("25.00"))
    assert payment.refundable(None) == Money.of("75.00")


def test_a_full_refund_of_a_refunded_payment_returns_nothing() -> None:
    payment = payment_after(charged("100.00"), refunded("100.00"))
    assert payment.refundable(None) is None


def test_refunding_a_declined_payment_is_a_named_error() -> None:
    given(declined()).when(lambda p: p.refund(Money.of("1.00"), "rf", "x")).raises(
        PaymentNotChargedError, field="order_id"
    )


def test_a_voided_payment_refuses_a_late_charge_as_a_decline() -> None:
    outcome = given(voided()).when(lambda p: p.refuse_charge(CUSTOMER, Money.of("100.00")))
    outcome.then(
        ev(Payment.Declined, order_id=ORDER, amount=Money.of("100.00"),
           reason=CANCELLED_BEFORE_PAYMENT)
    )
    assert outcome.events[0].originator_version == 2


def test_a_void_is_remembered_as_voided_with_nothing_charged() -> None:
    payment = payment_after(voided())
    assert payment.status is PaymentStatus.VOIDED
    assert payment.amount is None
    assert payment.transaction_id is None


def test_a_refund_of_a_voided_payment_changes_nothing() -> None:
    given(voided()).when(lambda p: p.refund(Money.of("5.00"), "rf", "x")).then_nothing()


@pytest.mark.parametrize("history", [(charged(),), (declined(),), (voided(), declined())])
def test_a_further_charge_of_a_charged_or_declined_payment_changes_nothing(
    history: tuple[ev, ...],
) -> None:
    given(*history).when(lambda p: p.refuse_charge(CUSTOMER, Money.of("1.00"))).then_nothing()


def test_a_payment_rebuilt_from_its_events_equals_the_live_one() -> None:
    live = Payment.void(ORDER, "customer cancelled")
    live.refuse_charge(CUSTOMER, Money.of("10.00"))
    assert _replay(live) == live
    charged_live = Payment.charge(uuid4(), CUSTOMER, Money.of("10.00"), "t")
    charged_live.refund(Money.of("4.00"), "rf", "x")
    assert _replay(charged_live) == charged_live


def _replay(live: Payment) -> Payment | None:
    rebuilt = None
    for event in list(live.collect_events()):
        rebuilt = event.mutate(rebuilt)
    return rebuilt


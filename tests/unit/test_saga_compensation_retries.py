"""No saga waits in silence: an unconfirmed undoing is sent again, then left to an operator's retry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from process_managers.compensation_retries import BACKOFF_CAP, DEFAULT_RETRIES, Retries, SagaNeedsNoRetryError
from process_managers.saga import OrderFulfillment
from process_managers.state import SagaStatus, StepStatus
from process_managers.steps import StepName
from tests.dsl import ev, given
from tests.sagas import T0, TIMEOUT, Order, Saga, commands_in, saga_after, sends, story

PAYMENT = StepName.PAYMENT
FIRST = DEFAULT_RETRIES.first_wait
THREE = Retries(attempts=3, first_wait=timedelta(seconds=10))


@pytest.fixture
def order() -> Order:
    return Order.new()


def refund_awaited(order: Order) -> OrderFulfillment:
    """The stock was refused, so the charge is being refunded (attempt 1, sent at T0)."""
    return saga_after(order, order.charged(), order.rejected())


def fire(saga: OrderFulfillment, attempt: int, at: datetime, retries: Retries = DEFAULT_RETRIES) -> bool:
    return saga.time_out(PAYMENT, attempt, at, step_timeout=TIMEOUT, retries=retries)


def deadline(saga: OrderFulfillment) -> datetime:
    due = saga.state.step(PAYMENT).deadline
    assert due is not None
    return due


def test_every_undoing_has_a_deadline(order: Order) -> None:
    events = story(order, order.charged(), order.rejected())
    assert ev(Saga.CompensationRequested, step=PAYMENT, attempt=1, deadline=T0 + FIRST,
              command=sends("RefundPayment")).matches(events[-1])


def test_an_unconfirmed_refund_is_sent_again_under_a_new_id_and_waited_for_longer(order: Order) -> None:
    history = story(order, order.charged(), order.rejected())
    outcome = given(*history).when(lambda saga: fire(saga, 1, T0 + FIRST)).then(
        ev(Saga.CompensationRequested, step=PAYMENT, attempt=2, deadline=T0 + FIRST + 2 * FIRST,
           command=sends("RefundPayment", order_id=order.order_id)),
    )
    first, again = commands_in(history)[-1], commands_in(outcome.events)[0]
    assert again.command_id != first.command_id
    assert again.payload["amount"] is None  # all that is left: a refund done before gives nothing more


def test_a_deadline_that_has_not_come_or_was_answered_changes_nothing(order: Order) -> None:
    saga = refund_awaited(order)
    assert fire(saga, 1, T0 + FIRST - timedelta(seconds=1)) is False
    assert fire(saga, 2, T0 + FIRST) is False  # no such attempt yet
    confirmed = saga_after(order, order.charged(), order.rejected(), order.refunded())
    assert fire(confirmed, 1, T0 + FIRST) is False


def test_the_wait_doubles_each_attempt_up_to_a_cap() -> None:
    retries = Retries(attempts=20, first_wait=timedelta(seconds=30))
    assert [retries.wait(n).total_seconds() for n in range(1, 6)] == [30, 60, 120, 240, 480]
    assert retries.wait(6) == retries.wait(19) == BACKOFF_CAP


def test_after_the_configured_attempts_the_saga_needs_attention_and_sends_nothing_more(order: Order) -> None:
    saga = refund_awaited(order)
    for attempt in (1, 2):
        assert fire(saga, attempt, deadline(saga), THREE)
    assert saga.state.step(PAYMENT).undo_attempts == 3
    last = deadline(saga)
    history: list[Any] = list(saga.collect_events())
    given(*history).when(lambda s: fire(s, 3, last, THREE)).then(
        ev(Saga.AttentionNeeded, step=PAYMENT, attempts=3,
           reason="the payment undoing went unconfirmed after 3 attempt(s)"),
    )
    fire(saga, 3, last, THREE)
    assert saga.status is SagaStatus.NEEDS_ATTENTION
    assert saga.state.step(PAYMENT).deadline is None
    assert fire(saga, 3, last + BACKOFF_CAP, THREE) is False


def stuck(order: Order) -> OrderFulfillment:
    saga = refund_awaited(order)
    for attempt in (1, 2, 3):
        fire(saga, attempt, deadline(saga), THREE)
    assert saga.status is SagaStatus.NEEDS_ATTENTION
    return saga


def test_a_retry_sends_the_stuck_refund_again_with_a_fresh_round_of_attempts(order: Order) -> None:
    saga = stuck(order)
    sent = {c.command_id for c in commands_in(list(saga.collect_events()))}
    retried_at = T0 + timedelta(hours=1)
    saga.retry(retried_at, retries=THREE)
    resumed, requested = saga.collect_events()
    assert ev(Saga.CompensationResumed, step=PAYMENT).matches(resumed)
    assert ev(Saga.CompensationRequested, step=PAYMENT, attempt=4, deadline=retried_at + THREE.first_wait,
              command=sends("RefundPayment")).matches(requested)
    assert commands_in([requested])[0].command_id not in sent
    assert saga.status is SagaStatus.COMPENSATING
    for attempt in (4, 5):  # a whole round again before the next call for attention
        assert fire(saga, attempt, deadline(saga), THREE)
    assert saga.status is SagaStatus.COMPENSATING
    fire(saga, 6, deadline(saga), THREE)
    assert saga.state.status is SagaStatus.NEEDS_ATTENTION


def test_once_the_retried_refund_is_confirmed_the_order_is_cancelled(order: Order) -> None:
    saga = stuck(order)
    saga.retry(T0, retries=THREE)
    saga.collect_events()
    assert saga.on(order.refunded(), now=T0)
    compensated, cancel = saga.collect_events()
    assert ev(Saga.StepCompensated, step=PAYMENT).matches(compensated)
    assert ev(Saga.CancellationRequested, command=sends("CancelOrder")).matches(cancel)
    assert saga.state.step(PAYMENT).status is StepStatus.COMPENSATED


def test_a_confirmation_heard_while_waiting_for_an_operator_lets_the_compensation_go_on(order: Order) -> None:
    saga = stuck(order)  # say, the first refund re-driven from the dead letters by hand
    assert saga.on(order.refunded(), now=T0)
    assert saga.status is SagaStatus.COMPENSATING
    assert commands_in(list(saga.collect_events()))[-1].type == "CancelOrder"


def test_a_saga_that_needs_no_attention_refuses_a_retry_and_records_nothing(order: Order) -> None:
    for saga in (saga_after(order, order.charged()), refund_awaited(order)):
        saga.collect_events()
        with pytest.raises(SagaNeedsNoRetryError) as refused:
            saga.retry(T0)
        assert refused.value.field == "order_id"
        assert saga.collect_events() == []


def test_retries_refuse_a_nonsense_configuration() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Retries(attempts=0)
    with pytest.raises(ValueError, match="positive"):
        Retries(first_wait=timedelta(0))

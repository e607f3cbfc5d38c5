"""The saga's deadlines, late replies and customer cancellations, as given/when/then over its events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from process_managers.policy import TOO_LATE_TO_CANCEL
from process_managers.state import SagaStatus, StepStatus
from process_managers.steps import StepName
from tests.dsl import ev, given
from tests.sagas import T0, TIMEOUT, Deadline, Order, Saga, hears, saga_after, sends, story

PAYMENT, INVENTORY, SHIPPING, NOTIFICATION = StepName


@pytest.fixture
def order() -> Order:
    return Order.new()


def test_a_payment_that_times_out_is_refunded_at_once_in_case_it_happens_late(order: Order) -> None:
    given(*story(order)).when(hears(Deadline(PAYMENT))).then(
        ev(Saga.StepTimedOut, step=PAYMENT, attempt=1),
        ev(Saga.CompensationStarted, reason="payment timed out"),
        ev(Saga.CompensationRequested, step=PAYMENT,
           command=sends("RefundPayment", reason="payment timed out")),
    )


def test_a_void_after_a_payment_timeout_confirms_it_and_the_order_is_cancelled(order: Order) -> None:
    given(*story(order, Deadline(PAYMENT))).when(hears(order.voided())).then(
        ev(Saga.StepCompensated, step=PAYMENT),
        ev(Saga.CancellationRequested, command=sends("CancelOrder", reason="payment timed out")),
    )


def test_a_late_charge_is_undone_by_the_refund_already_sent_and_not_refunded_twice(order: Order) -> None:
    timed_out = story(order, Deadline(PAYMENT))
    given(*timed_out).when(hears(order.charged())).then_nothing()
    saga = saga_after(order, Deadline(PAYMENT), order.charged())
    assert saga.state.compensations_awaited == (PAYMENT,)
    given(*story(order, Deadline(PAYMENT), order.charged())).when(hears(order.refunded())).then(
        ev(Saga.StepCompensated, step=PAYMENT), ev(Saga.CancellationRequested)
    )


def test_a_late_decline_after_a_timeout_means_nothing_was_charged_so_the_order_is_cancelled(
    order: Order,
) -> None:
    given(*story(order, Deadline(PAYMENT))).when(hears(order.declined())).then(
        ev(Saga.StepFailed, step=PAYMENT, reason="insufficient funds"),
        ev(Saga.CancellationRequested, command=sends("CancelOrder", reason="payment timed out")),
    )


def test_a_timed_out_reservation_is_released_then_the_payment_refunded(order: Order) -> None:
    given(*story(order, order.charged())).when(hears(Deadline(INVENTORY))).then(
        ev(Saga.StepTimedOut, step=INVENTORY),
        ev(Saga.CompensationStarted, reason="inventory timed out"),
        ev(Saga.CompensationRequested, step=INVENTORY, command=sends("ReleaseStock")),
    )
    given(*story(order, order.charged(), Deadline(INVENTORY))).when(hears(order.released())).then(
        ev(Saga.StepCompensated, step=INVENTORY),
        ev(Saga.CompensationRequested, step=PAYMENT, command=sends("RefundPayment")),
    )


def test_a_reservation_refused_after_its_early_release_changes_nothing(order: Order) -> None:
    released = story(order, order.charged(), Deadline(INVENTORY), order.released())
    given(*released).when(hears(order.rejected("released before reserved"))).then_nothing()


def test_a_timed_out_shipment_is_cancelled_then_stock_released_then_payment_refunded(order: Order) -> None:
    done = (order.charged(), order.reserved())
    given(*story(order, *done)).when(hears(Deadline(SHIPPING))).then(
        ev(Saga.StepTimedOut, step=SHIPPING),
        ev(Saga.CompensationStarted, reason="shipping timed out"),
        ev(Saga.CompensationRequested, step=SHIPPING, command=sends("CancelShipment")),
    )
    timed_out = (*done, Deadline(SHIPPING))
    given(*story(order, *timed_out)).when(hears(order.shipped())).then_nothing()  # no stock commit
    given(*story(order, *timed_out, order.shipped())).when(hears(order.shipment_cancelled())).then(
        ev(Saga.StepCompensated, step=SHIPPING),
        ev(Saga.CompensationRequested, step=INVENTORY, command=sends("ReleaseStock")),
    )


def test_a_timed_out_notification_is_recorded_and_the_order_completes_anyway(order: Order) -> None:
    history = story(order, *order.happy_replies()[:-1])
    given(*history).when(hears(Deadline(NOTIFICATION))).then(
        ev(Saga.StepTimedOut, step=NOTIFICATION),
        ev(Saga.CompletionRequested, command=sends("CompleteOrder")),
    )
    late = story(order, *order.happy_replies()[:-1], Deadline(NOTIFICATION))
    given(*late).when(hears(order.notified())).then_nothing()


@pytest.mark.parametrize(
    "deadline",
    [Deadline(PAYMENT, at=T0 + TIMEOUT - timedelta(microseconds=1)), Deadline(PAYMENT, attempt=2),
     Deadline(INVENTORY)],
    ids=["before its time", "another attempt", "a step not in flight"],
)
def test_a_deadline_that_has_not_come_for_the_awaited_attempt_changes_nothing(
    order: Order, deadline: Deadline
) -> None:
    given(*story(order)).when(hears(deadline)).then_nothing()


@pytest.mark.parametrize("ended", ["charged", "declined"])
def test_a_deadline_after_its_step_ended_changes_nothing(order: Order, ended: str) -> None:
    given(*story(order, getattr(order, ended)())).when(hears(Deadline(PAYMENT))).then_nothing()


def test_a_deadline_fired_twice_times_out_once(order: Order) -> None:
    given(*story(order, Deadline(PAYMENT))).when(hears(Deadline(PAYMENT))).then_nothing()


def test_a_cancellation_while_payment_is_in_flight_waits_for_its_outcome(order: Order) -> None:
    given(*story(order)).when(hears(order.cancel_requested("changed my mind"))).then(
        ev(Saga.CompensationStarted, reason="changed my mind")
    )
    asked = story(order, order.cancel_requested("changed my mind"))
    given(*asked).when(hears(order.charged())).then(
        ev(Saga.StepSucceeded, step=PAYMENT),
        ev(Saga.CompensationRequested, step=PAYMENT,
           command=sends("RefundPayment", reason="changed my mind")),
    )
    given(*asked).when(hears(order.declined())).then(
        ev(Saga.StepFailed, step=PAYMENT),
        ev(Saga.CancellationRequested, command=sends("CancelOrder", reason="changed my mind")),
    )
    given(*asked).when(hears(Deadline(PAYMENT))).then(
        ev(Saga.StepTimedOut, step=PAYMENT),
        ev(Saga.CompensationRequested, step=PAYMENT, command=sends("RefundPayment")),
    )


def test_a_cancellation_while_stock_is_being_reserved_undoes_the_reservation_if_it_happens(
    order: Order,
) -> None:
    asked = story(order, order.charged(), order.cancel_requested())
    given(*asked).when(hears(order.reserved())).then(
        ev(Saga.StepSucceeded, step=INVENTORY),
        ev(Saga.CompensationRequested, step=INVENTORY, command=sends("ReleaseStock")),
    )
    given(*asked).when(hears(order.rejected())).then(
        ev(Saga.StepFailed, step=INVENTORY),
        ev(Saga.CompensationRequested, step=PAYMENT, command=sends("RefundPayment")),
    )


def test_a_cancellation_while_shipping_cancels_a_booked_shipment_instead_of_selling_the_stock(
    order: Order,
) -> None:
    asked = story(order, order.charged(), order.reserved(), order.cancel_requested())
    given(*asked).when(hears(order.shipped())).then(
        ev(Saga.StepSucceeded, step=SHIPPING),
        ev(Saga.CompensationRequested, step=SHIPPING, command=sends("CancelShipment")),
    )
    given(*asked).when(hears(order.shipment_failed())).then(
        ev(Saga.StepFailed, step=SHIPPING),
        ev(Saga.CompensationRequested, step=INVENTORY, command=sends("ReleaseStock")),
    )


def test_a_cancellation_mid_flight_ends_compensated_after_every_undoing_and_the_cancel(order: Order) -> None:
    saga = saga_after(
        order, order.charged(), order.reserved(), order.cancel_requested("too slow"), order.shipped(),
        order.shipment_cancelled(), order.released(), order.refunded(), order.cancelled("too slow"),
    )
    assert (saga.status, saga.reason) == (SagaStatus.COMPENSATED, "too slow")
    assert [s.status for s in saga.steps.values()] == [
        StepStatus.COMPENSATED, StepStatus.COMPENSATED, StepStatus.COMPENSATED, StepStatus.SKIPPED]


@pytest.mark.parametrize(
    "replies",
    [("charged", "reserved", "shipped"), ("charged", "reserved", "shipped", "committed")],
    ids=["stock commit in flight", "notification in flight"],
)
def test_a_cancellation_after_the_stock_is_sold_is_declined_and_the_order_completes(
    order: Order, replies: tuple[str, ...]
) -> None:
    history = story(order, *(getattr(order, name)() for name in replies))
    given(*history).when(hears(order.cancel_requested())).then(
        ev(Saga.CancellationDeclined, reason=TOO_LATE_TO_CANCEL)
    )
    declined = story(order, *(getattr(order, name)() for name in replies), order.cancel_requested())
    given(*declined).when(hears(order.cancel_requested())).then_nothing()
    saga = saga_after(order, *order.happy_replies(), order.completed())
    assert saga.status is SagaStatus.COMPLETED


@pytest.mark.parametrize(
    "before", [("declined",), ("charged", "rejected"), ("cancel_requested",)],
    ids=["after a decline", "while undoing", "asked twice"],
)
def test_a_cancellation_while_already_undoing_changes_nothing(order: Order, before: tuple[str, ...]) -> None:
    history = story(order, *(getattr(order, name)() for name in before))
    given(*history).when(hears(order.cancel_requested())).then_nothing()

"""The saga's decisions (DESIGN §3): given what it did, when it hears a reply, then the commands it sends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commands.contract import messages as m
from commands.inventory import ReserveStock
from commands.notifications import SendNotification
from commands.payments import ChargePayment
from commands.shipping import CreateShipment
from process_managers.decisions import RequestStep
from process_managers.policy import decide
from process_managers.state import SagaStatus, StepStatus
from process_managers.steps import STEPS, StepName
from tests.dsl import ev, given
from tests.sagas import ADDRESS, T0, TIMEOUT, Order, Saga, commands_in, hears, saga_after, sends, story

PAYMENT, INVENTORY, SHIPPING, NOTIFICATION = StepName


@pytest.fixture
def order() -> Order:
    return Order.new()


def test_a_placed_order_starts_its_saga_and_charges_the_total(order: Order) -> None:
    outcome = given().when(lambda _: Saga.start(order.placed(), now=T0, step_timeout=TIMEOUT))
    outcome.then(
        ev(Saga.Started, id=order.saga_id, order_id=order.order_id, customer_id=order.customer_id,
           shipping_address=ADDRESS),
        ev(Saga.StepRequested, step=PAYMENT, attempt=1, deadline=T0 + TIMEOUT, command=sends(
            "ChargePayment", order_id=order.order_id, customer_id=order.customer_id,
            amount="2649.97", currency="USD")),
    )
    command = outcome.events[1].command
    assert ChargePayment.model_validate(command.payload).command_id == command.command_id
    assert command.context == "payments"


def test_a_charged_payment_reserves_every_line_of_the_order(order: Order) -> None:
    first, second = order.product_ids
    outcome = given(*story(order)).when(hears(order.charged())).then(
        ev(Saga.StepSucceeded, step=PAYMENT, facts={
            "amount": {"amount": "2649.97", "currency": "USD"}, "transaction_id": "txn_1"}),
        ev(Saga.StepRequested, step=INVENTORY, attempt=1, command=sends("ReserveStock", lines=[
            {"product_id": first, "quantity": 2}, {"product_id": second, "quantity": 1}])),
    )
    ReserveStock.model_validate(outcome.events[1].command.payload)


def test_reserved_stock_books_the_shipment_to_the_orders_address(order: Order) -> None:
    outcome = given(*story(order, order.charged())).when(hears(order.reserved())).then(
        ev(Saga.StepSucceeded, step=INVENTORY),
        ev(Saga.StepRequested, step=SHIPPING, command=sends("CreateShipment", address=ADDRESS)),
    )
    assert CreateShipment.model_validate(outcome.events[1].command.payload).address == ADDRESS


def test_a_booked_shipment_commits_the_stock_as_sold_before_notifying(order: Order) -> None:
    history = story(order, order.charged(), order.reserved())
    given(*history).when(hears(order.shipped("TRK42"))).then(
        ev(Saga.StepSucceeded, step=SHIPPING, facts={"tracking_number": "TRK42"}),
        ev(Saga.StockCommitRequested, command=sends("CommitStock", order_id=order.order_id)),
    )


def test_committed_stock_notifies_the_customer_with_the_tracking_number(order: Order) -> None:
    history = story(order, order.charged(), order.reserved(), order.shipped("TRK42"))
    outcome = given(*history).when(hears(order.committed())).then(
        ev(Saga.StepRequested, step=NOTIFICATION,
           command=sends("SendNotification", customer_id=order.customer_id)),
    )
    notification = SendNotification.model_validate(outcome.events[0].command.payload)
    assert "TRK42" in notification.body


def test_a_sent_notification_completes_the_order_and_the_saga_ends_when_it_is(order: Order) -> None:
    history = story(order, *order.happy_replies()[:-1])
    given(*history).when(hears(order.notified())).then(
        ev(Saga.StepSucceeded, step=NOTIFICATION),
        ev(Saga.CompletionRequested, command=sends("CompleteOrder", order_id=order.order_id)),
    )
    given(*story(order, *order.happy_replies())).when(hears(order.completed())).then(ev(Saga.Completed))
    saga = saga_after(order, *order.happy_replies(), order.completed())
    assert saga.status is SagaStatus.COMPLETED
    assert {s.status for s in saga.steps.values()} == {StepStatus.SUCCEEDED}


def test_a_failed_notification_is_recorded_and_the_order_completes_anyway(order: Order) -> None:
    history = story(order, *order.happy_replies()[:-1])
    given(*history).when(hears(order.notification_failed())).then(
        ev(Saga.StepFailed, step=NOTIFICATION, reason="mailbox unavailable"),
        ev(Saga.CompletionRequested, command=sends("CompleteOrder")),
    )


def test_when_payment_declined_cancel_the_order_without_a_refund(order: Order) -> None:
    given(*story(order)).when(hears(order.declined("card expired"))).then(
        ev(Saga.StepFailed, step=PAYMENT, reason="card expired"),
        ev(Saga.CompensationStarted, reason="payment declined: card expired"),
        ev(Saga.CancellationRequested, command=sends(
            "CancelOrder", order_id=order.order_id, reason="payment declined: card expired")),
    )


def test_when_stock_rejected_refund_the_payment_and_release_nothing(order: Order) -> None:
    given(*story(order, order.charged())).when(hears(order.rejected("out of stock"))).then(
        ev(Saga.StepFailed, step=INVENTORY, reason="out of stock"),
        ev(Saga.CompensationStarted, reason="stock reservation rejected: out of stock"),
        ev(Saga.CompensationRequested, step=PAYMENT, command=sends(
            "RefundPayment", order_id=order.order_id, amount=None,
            reason="stock reservation rejected: out of stock")),
    )


def test_when_shipment_failed_undo_the_steps_one_at_a_time_latest_first(order: Order) -> None:
    done = (order.charged(), order.reserved())
    given(*story(order, *done)).when(hears(order.shipment_failed())).then(
        ev(Saga.StepFailed, step=SHIPPING),
        ev(Saga.CompensationStarted, reason="shipment failed: no carrier capacity"),
        ev(Saga.CompensationRequested, step=INVENTORY, command=sends("ReleaseStock")),
    )
    failed = (*done, order.shipment_failed())
    given(*story(order, *failed)).when(hears(order.released())).then(
        ev(Saga.StepCompensated, step=INVENTORY),
        ev(Saga.CompensationRequested, step=PAYMENT, command=sends("RefundPayment")),
    )
    given(*story(order, *failed, order.released())).when(hears(order.refunded())).then(
        ev(Saga.StepCompensated, step=PAYMENT),
        ev(Saga.CancellationRequested, command=sends("CancelOrder")),
    )


def test_a_refund_confirmed_before_the_release_is_asked_for_moves_nothing_on(order: Order) -> None:
    failed = story(order, order.charged(), order.reserved(), order.shipment_failed())
    given(*failed).when(hears(order.refunded())).then_nothing()


def test_the_saga_is_compensated_only_once_the_order_is_cancelled(order: Order) -> None:
    undone = (order.charged(), order.rejected(), order.refunded())
    saga = saga_after(order, *undone)
    assert saga.status is SagaStatus.COMPENSATING
    assert commands_in(list(saga.collect_events()))[-1].type == "CancelOrder"
    given(*story(order, *undone)).when(hears(order.cancelled())).then(
        ev(Saga.Compensated, reason="stock reservation rejected: Laptop Pro 15: 2 requested, 1 available")
    )


@pytest.mark.parametrize("confirmation", ["refunded", "voided"])
def test_a_refund_or_a_void_confirms_the_payment_undone(order: Order, confirmation: str) -> None:
    rejected = story(order, order.charged(), order.rejected())
    given(*rejected).when(hears(getattr(order, confirmation)())).then(
        ev(Saga.StepCompensated, step=PAYMENT), ev(Saga.CancellationRequested)
    )


def test_the_saga_shows_each_steps_status_and_what_it_still_awaits(order: Order) -> None:
    saga = saga_after(order, order.charged(), order.reserved(), order.shipment_failed())
    assert saga.status is SagaStatus.COMPENSATING
    assert {name: s.status for name, s in saga.steps.items()} == {
        PAYMENT: StepStatus.SUCCEEDED, INVENTORY: StepStatus.COMPENSATING,
        SHIPPING: StepStatus.FAILED, NOTIFICATION: StepStatus.SKIPPED,
    }
    assert saga.current_step is INVENTORY
    assert saga.state.compensations_awaited == (INVENTORY,)
    assert saga.state.still_to_undo == (INVENTORY, PAYMENT)
    assert [s.attempts for s in saga.steps.values()] == [1, 1, 1, 0]


DUPLICATES = [
    ("placed", ()),
    ("charged", ("charged",)),
    ("declined", ("declined",)),
    ("reserved", ("charged", "reserved")),
    ("shipped", ("charged", "reserved", "shipped")),
    ("committed", ("charged", "reserved", "shipped", "committed")),
    ("notified", ("charged", "reserved", "shipped", "committed", "notified")),
    ("released", ("charged", "reserved", "shipment_failed", "released")),
    ("refunded", ("charged", "rejected", "refunded")),
]


@pytest.mark.parametrize(("reply", "before"), DUPLICATES)
def test_a_reply_heard_twice_changes_nothing(order: Order, reply: str, before: tuple[str, ...]) -> None:
    history = story(order, *(getattr(order, name)() for name in before))
    given(*history).when(hears(getattr(order, reply)())).then_nothing()


STALE = [
    ("reserved", ()),  # no reservation was asked for yet
    ("shipped", ("charged",)),
    ("committed", ("charged", "reserved")),
    ("released", ("charged", "reserved")),  # nothing is being undone
    ("refunded", ("charged",)),
    ("completed", ("charged", "reserved", "shipped", "committed")),  # completion not asked for
    ("cancelled", ("charged",)),  # cancellation not asked for
    ("declined", ("charged",)),  # the payment already succeeded
]


@pytest.mark.parametrize(("reply", "before"), STALE)
def test_a_reply_about_nothing_awaited_changes_nothing(
    order: Order, reply: str, before: tuple[str, ...]
) -> None:
    history = story(order, *(getattr(order, name)() for name in before))
    given(*history).when(hears(getattr(order, reply)())).then_nothing()


ALL_REPLIES = [name for name in dir(Order) if not name.startswith("_") and name not in
               ("new", "saga_id", "order_id", "customer_id", "product_ids", "happy_replies")]


@pytest.mark.parametrize("reply", ALL_REPLIES)
def test_nothing_changes_a_finished_saga(order: Order, reply: str) -> None:
    completed = story(order, *order.happy_replies(), order.completed())
    given(*completed).when(hears(getattr(order, reply)())).then_nothing()
    compensated = story(order, order.declined(), order.cancelled())
    given(*compensated).when(hears(getattr(order, reply)())).then_nothing()


def test_every_command_carries_the_order_as_correlation_and_its_saga_event_as_cause(order: Order) -> None:
    events = story(order, order.charged(), order.reserved(), order.shipment_failed(), order.released(),
                   order.refunded())
    carrying = [e for e in events if getattr(e, "command", None) is not None]
    assert [e.command.type for e in carrying] == [
        "ChargePayment", "ReserveStock", "CreateShipment", "ReleaseStock", "RefundPayment", "CancelOrder"]
    for event in carrying:
        payload = event.command.payload
        assert payload["correlation_id"] == str(order.order_id)
        assert payload["causation_id"] == f"OrderFulfillment:{order.saga_id}:{event.originator_version}"
        assert payload["command_id"] == str(event.command.command_id)
    assert len({e.command.command_id for e in carrying}) == len(carrying)


def test_a_decision_taken_again_sends_the_same_command_ids(order: Order) -> None:
    replies = (order.charged(), order.reserved(), order.shipped(), order.committed())
    first, again = story(order, *replies), story(order, *replies)
    assert commands_in(first) == commands_in(again)
    assert commands_in(story(Order.new(), *replies))[0].command_id != commands_in(first)[0].command_id


def test_one_order_has_one_saga_id_and_other_orders_have_others(order: Order) -> None:
    assert Saga.create_id(order.order_id) == saga_after(order).id == saga_after(order).id
    assert Saga.create_id(Order.new().order_id) != order.saga_id


def test_decide_is_pure_it_reads_the_state_and_changes_nothing(order: Order) -> None:
    state = saga_after(order, order.charged()).state
    assert decide(state, order.reserved()) == decide(state, order.reserved())
    assert state.step(INVENTORY).status is StepStatus.REQUESTED
    fresh = saga_after(order).state.changed(steps={s.name: type(state.step(PAYMENT))() for s in STEPS})
    assert decide(fresh, order.placed()) == [RequestStep(PAYMENT)]
    assert decide(state, m.StockCommitted(order_id=order.order_id)) == []


def test_a_step_deadline_is_its_request_time_plus_the_step_timeout(order: Order) -> None:
    saga = Saga.start(order.placed(), now=T0, step_timeout=timedelta(seconds=5))
    assert saga.steps[PAYMENT].deadline == T0 + timedelta(seconds=5)

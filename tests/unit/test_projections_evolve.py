"""Each projection's pure function: given an aggregate's events, then the row a reader sees."""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from eventsourcing.utils import get_topic, resolve_topic

from domain.notification import Notification
from domain.order import Order, OrderLine
from domain.payment import CANCELLED_BEFORE_PAYMENT, Payment
from domain.privacy import personal_data_of
from domain.shipment import Shipment
from domain.stock import Stock
from domain.values import Address, Money
from process_managers.saga import OrderFulfillment
from process_managers.steps import STEPS, StepName
from projections import (
    notification_log,
    order_summary,
    payment_status,
    saga_progress,
    shipment_tracking,
    stock_levels,
)
from projections.catalog import named
from projections.facts import Fact, fact_of
from projections.projection import CannotApplyError, changed
from tests.sagas import Deadline, story
from tests.sagas import Order as SagaOrder

R = TypeVar("R")
ADDRESS = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")


def facts(events: Iterable[Any]) -> list[Fact]:
    return [fact_of(event, "Test", n) for n, event in enumerate(events, 1)]


def project(evolve: Callable[[R | None, Fact], R], events: Iterable[Any]) -> R:
    row: R | None = None
    for fact in facts(events):
        row = evolve(row, fact)
    assert row is not None
    return row


def placed_order() -> Order:
    line = OrderLine(product_id=uuid4(), quantity=2, unit_price=Money.of("49.99"))
    return Order.place(uuid4(), uuid4(), [line], ADDRESS)


# Order summary


def test_a_placed_order_is_pending_with_its_items_address_and_total() -> None:
    order = placed_order()
    row = project(order_summary.evolve, order.collect_events())

    assert (row.status, row.version, row.total_amount) == ("PENDING", 1, Decimal("99.98"))
    assert row.lines == (order_summary.OrderLine(order.lines[0].product_id, 2, Decimal("49.99")),)
    assert row.shipping_address.zip_code == "62701"
    assert row.created_at == row.updated_at == order.created_on


def test_an_order_is_processing_once_its_saga_has_started_and_the_order_version_stays() -> None:
    order = placed_order()
    saga = SagaOrder(order.id, order.customer_id, (uuid4(), uuid4()))
    row = project(order_summary.evolve, [*order.collect_events(), *story(saga)[:1]])

    assert (row.status, row.version) == ("PROCESSING", 1)


def test_the_saga_starting_before_the_order_is_projected_ends_in_the_same_row() -> None:
    order = placed_order()
    saga = SagaOrder(order.id, order.customer_id, (uuid4(), uuid4()))
    started = story(saga)[0]
    placed = list(order.collect_events())
    order.cancel("out of stock")
    cancelled = list(order.collect_events())

    saga_first = project(order_summary.evolve, [started, *placed, *cancelled])
    order_first = project(order_summary.evolve, [*placed, started, *cancelled])

    assert saga_first == order_first
    assert (saga_first.status, saga_first.failure_reason) == ("CANCELLED", "out of stock")
    assert saga_first.version == 2


def test_a_saga_projected_before_its_order_leaves_a_row_that_is_not_shown_yet() -> None:
    saga = SagaOrder.new()
    row = project(order_summary.evolve, story(saga)[:1])

    assert row.version == 0  # queries show orders from version 1 on


def test_a_completed_order_is_completed() -> None:
    order = placed_order()
    order.complete()
    assert project(order_summary.evolve, order.collect_events()).status == "COMPLETED"


def test_an_order_event_without_its_placement_cannot_be_applied() -> None:
    order = placed_order()
    order.request_cancellation("changed my mind")
    placed, requested = order.collect_events()
    with pytest.raises(CannotApplyError):
        order_summary.evolve(None, facts([placed, requested])[1])


# Stock levels


def test_stock_levels_follow_restocks_reservations_releases_and_sales() -> None:
    stock = Stock.list_product(uuid4(), "Wireless Mouse", Money.of("49.99"))
    first, second = uuid4(), uuid4()
    stock.restock(10)
    stock.reserve(first, 3)
    stock.reserve(second, 2)
    stock.sell(first)
    stock.release(second)
    row = project(stock_levels.evolve, stock.collect_events())

    assert (row.name, row.price, row.on_hand, row.reserved, row.available) == (
        "Wireless Mouse", Decimal("49.99"), 7, 0, 7)


def test_a_reservation_shows_as_reserved_but_still_on_hand() -> None:
    stock = Stock.list_product(uuid4(), "Laptop Pro 15", Money.of("1299.99"))
    stock.restock(5)
    stock.reserve(uuid4(), 2)
    row = project(stock_levels.evolve, stock.collect_events())

    assert (row.on_hand, row.reserved, row.available) == (5, 2, 3)


# Payments


def test_a_charge_completes_the_payment_and_a_partial_refund_keeps_it_completed() -> None:
    payment = Payment.charge(uuid4(), uuid4(), Money.of("100.00"), "txn_1")
    payment.refund(Money.of("40.00"), "rf_1", "damaged")
    row = project(payment_status.evolve, payment.collect_events())

    assert (row.status, row.amount, row.refunded_amount, row.transaction_id) == (
        "COMPLETED", Decimal("100.00"), Decimal("40.00"), "txn_1")


def test_refunding_everything_marks_the_payment_refunded() -> None:
    order_id = uuid4()
    payment = Payment.charge(order_id, uuid4(), Money.of("100.00"), "txn_1")
    payment.refund(Money.of("40.00"), "rf_1", "damaged")
    payment.refund(Money.of("60.00"), "rf_2", "cancelled")
    row = project(payment_status.evolve, payment.collect_events())

    assert (row.status, row.refunded_amount, row.order_id) == ("REFUNDED", Decimal("100.00"), order_id)


def test_a_declined_charge_is_failed_and_a_charge_after_a_void_is_failed_too() -> None:
    declined = Payment.decline(uuid4(), uuid4(), Money.of("10.00"), "card declined")
    assert project(payment_status.evolve, declined.collect_events()).status == "FAILED"

    voided = Payment.void(uuid4(), "payment timed out")
    void = list(voided.collect_events())
    assert project(payment_status.evolve, void).status == "VOIDED"
    voided.refuse_charge(uuid4(), Money.of("10.00"))
    row = project(payment_status.evolve, [*void, *voided.collect_events()])
    assert (row.status, row.amount, row.refunded_amount) == ("FAILED", Decimal("10.00"), Decimal("0.00"))


def test_a_refund_of_a_payment_never_seen_cannot_be_applied() -> None:
    payment = Payment.charge(uuid4(), uuid4(), Money.of("100.00"), "txn_1")
    payment.refund(Money.of("40.00"), "rf_1", "damaged")
    refunded = facts(payment.collect_events())[1]
    with pytest.raises(CannotApplyError):
        payment_status.evolve(None, refunded)


def test_a_charge_is_processed_when_taken_and_a_refund_leaves_its_reference_and_time() -> None:
    payment = Payment.charge(uuid4(), uuid4(), Money.of("100.00"), "txn_1")
    payment.refund(Money.of("40.00"), "rf_1", "damaged")
    payment.refund(Money.of("60.00"), "rf_2", "cancelled")
    charged, _, last_refund = events = payment.collect_events()
    row = project(payment_status.evolve, events)

    assert (row.created_at, row.processed_at) == (charged.timestamp, charged.timestamp)
    assert row.failure_reason is None
    assert (row.refund_reference, row.refunded_at) == ("rf_2", last_refund.timestamp)
    assert row.updated_at == last_refund.timestamp


def test_a_declined_charge_keeps_its_reason_and_a_void_keeps_why_nothing_was_taken() -> None:
    declined = project(payment_status.evolve, Payment.decline(uuid4(), uuid4(), Money.of("10.00"),
                                                              "card expired").collect_events())
    assert (declined.failure_reason, declined.processed_at) == ("card expired", declined.created_at)

    voided = Payment.void(uuid4(), "payment timed out")
    void = list(voided.collect_events())
    row = project(payment_status.evolve, void)
    assert (row.failure_reason, row.processed_at) == ("payment timed out", None)
    assert row.created_at == void[0].timestamp
    voided.refuse_charge(uuid4(), Money.of("10.00"))
    late = list(voided.collect_events())
    row = project(payment_status.evolve, [*void, *late])
    assert (row.failure_reason, row.processed_at) == (CANCELLED_BEFORE_PAYMENT, late[0].timestamp)
    assert row.created_at == void[0].timestamp and row.refund_reference is None


# Shipments


def test_a_shipment_is_preparing_then_shipped_then_delivered() -> None:
    shipment = Shipment.create(uuid4(), ADDRESS, "TRK1")
    events = list(shipment.collect_events())
    assert project(shipment_tracking.evolve, events).status == "PREPARING"
    shipment.dispatch()
    shipment.deliver()
    row = project(shipment_tracking.evolve, [*events, *shipment.collect_events()])

    assert (row.status, row.tracking_number) == ("DELIVERED", "TRK1")


def test_a_cancel_before_the_booking_then_the_late_booking_refused_reads_failed() -> None:
    shipment = Shipment.cancelled_before_creation(uuid4(), "order cancelled")
    shipment.refuse_creation()
    row = project(shipment_tracking.evolve, shipment.collect_events())

    assert (row.status, row.tracking_number) == ("FAILED", None)


def test_a_shipment_keeps_when_it_was_booked_and_why_it_was_stopped() -> None:
    shipment = Shipment.create(uuid4(), ADDRESS, "TRK1")
    shipment.cancel("order cancelled by customer")
    created, cancelled = events = shipment.collect_events()
    row = project(shipment_tracking.evolve, events)

    assert (row.status, row.created_at) == ("CANCELLED", created.timestamp)
    assert row.updated_at == cancelled.timestamp
    assert row.failure_reason == "order cancelled by customer"


def test_a_refused_shipment_opens_failed_with_the_carrier_s_reason() -> None:
    refused = Shipment.refused(uuid4(), "no carrier capacity")
    (failed,) = refused.collect_events()
    row = project(shipment_tracking.evolve, [failed])

    assert (row.status, row.failure_reason) == ("FAILED", "no carrier capacity")
    assert row.created_at == failed.timestamp


# Notifications


def test_a_notification_is_sent_or_failed_with_its_channel() -> None:
    order_id = uuid4()
    sent = Notification.sent(order_id, uuid4(), "order_confirmation", "email", "Hi", "Body")
    failed = Notification.failed(uuid4(), uuid4(), "order_confirmation", "sms", "no signal")

    assert project(notification_log.evolve, sent.collect_events()).status == "SENT"
    row = project(notification_log.evolve, failed.collect_events())
    assert (row.status, row.channel) == ("FAILED", "sms")


def test_a_row_changed_in_a_few_fields_is_the_row_replace_makes_and_an_unknown_field_is_refused() -> None:
    row = project(order_summary.evolve, placed_order().collect_events())

    assert changed(row, order_status="CANCELLED", failure_reason="declined") == dataclasses.replace(
        row, order_status="CANCELLED", failure_reason="declined")
    assert row.order_status == "PENDING"
    with pytest.raises(TypeError, match="no field colour"):
        changed(row, colour="red")


# Saga progress


def test_a_completed_saga_shows_every_step_succeeded_and_its_decisions_in_order() -> None:
    order = SagaOrder.new()
    row = project(saga_progress.evolve, story(order, *order.happy_replies(), order.completed()))

    assert (row.status, row.current_step, row.order_id) == ("COMPLETED", None, order.order_id)
    assert {(s.name, s.status, s.attempts) for s in row.steps} == {
        (name, "SUCCEEDED", 1) for name in saga_progress.STEP_NAMES}
    kinds = [entry.type for entry in row.timeline]
    assert kinds[:3] == ["Started", "StepRequested", "StepSucceeded"]
    assert kinds[-1] == "Completed"
    assert [entry.version for entry in row.timeline] == list(range(1, len(kinds) + 1))


def test_a_saga_in_flight_shows_the_step_it_waits_for() -> None:
    order = SagaOrder.new()
    row = project(saga_progress.evolve, story(order, order.charged()))

    assert (row.status, row.current_step) == ("RUNNING", "inventory")
    assert row.timeline[-1].detail == "attempt 1: ReserveStock"


def test_a_failed_step_skips_the_rest_and_undoes_the_earlier_steps() -> None:
    order = SagaOrder.new()
    undoing = project(saga_progress.evolve, story(order, order.charged(), order.rejected()))

    assert (undoing.status, undoing.current_step) == ("COMPENSATING", "payment")
    statuses = {s.name: s.status for s in undoing.steps}
    assert statuses == {"payment": "COMPENSATING", "inventory": "FAILED", "shipping": "SKIPPED",
                        "notification": "SKIPPED"}
    failed = next(e for e in undoing.timeline if e.type == "StepFailed")
    assert (failed.step, failed.detail) == ("inventory", "Laptop Pro 15: 2 requested, 1 available")

    done = project(saga_progress.evolve, story(order, order.charged(), order.rejected(), order.refunded(),
                                               order.cancelled()))
    assert done.status == "COMPENSATED"
    assert {s.name: s.status for s in done.steps}["payment"] == "COMPENSATED"


def test_a_step_that_timed_out_is_recorded_and_then_undone() -> None:
    order = SagaOrder.new()
    row = project(saga_progress.evolve, story(order, Deadline(StepName.PAYMENT)))

    assert [(e.type, e.step) for e in row.timeline[1:]] == [
        ("StepRequested", "payment"), ("StepTimedOut", "payment"), ("CompensationStarted", None),
        ("CompensationRequested", "payment")]
    assert (row.status, row.current_step, row.steps[0].status) == ("COMPENSATING", "payment", "COMPENSATING")


def test_a_step_timed_out_and_not_yet_undone_reads_timed_out() -> None:
    order = SagaOrder.new()
    events = story(order, Deadline(StepName.PAYMENT))
    row = project(saga_progress.evolve, events[:3])

    assert (row.steps[0].status, row.current_step) == ("TIMED_OUT", None)


def test_the_saga_topics_and_steps_the_read_side_names_are_the_saga_s_own() -> None:
    assert get_topic(OrderFulfillment.Started) == saga_progress.SAGA_STARTED
    declared = {
        name for name, member in vars(OrderFulfillment).items()
        if inspect.isclass(member) and issubclass(member, OrderFulfillment.Event)
        and name not in ("Event", "Created")
    }
    assert set(saga_progress.DECISIONS) == declared
    assert tuple(step.name.value for step in STEPS) == saga_progress.STEP_NAMES


# Projections that leave seals shut in a rebuild


def sealed(fact: Fact) -> Fact:
    """The fact as a rebuild that opens no seal reads it: each declared personal field a sealed value."""
    declared = personal_data_of(resolve_topic(fact.topic))
    if declared is None:
        return fact
    data = copy.deepcopy(dict(fact.data))
    for path in declared.fields:
        *parents, name = path.split(".")
        holder = functools.reduce(lambda value, key: value.get(key, {}), parents, data)
        if name in holder:  # a step's command carries an address only on its way to the carrier
            holder[name] = "sealed:AAAA"
    return fact._replace(data=data)


def test_a_projection_that_leaves_seals_shut_makes_the_same_rows_from_sealed_events() -> None:
    order = SagaOrder.new()
    shipment = Shipment.create(uuid4(), ADDRESS, "TRK1", customer_id=uuid4())
    shipment.dispatch()
    streams = {
        "saga_progress": facts(story(order, *order.happy_replies(), order.completed())),
        "shipment_tracking": facts(shipment.collect_events()),
    }
    shut = [p for p in named(None) if not p.reads_personal_data]
    assert {p.name for p in shut} == set(streams)
    for projection in shut:
        stream = streams[projection.name]
        assert any(sealed(fact) != fact for fact in stream)  # the stream holds personal fields
        opened = sealed_row = None
        for fact in stream:
            opened = projection.evolve(opened, fact)
            sealed_row = projection.evolve(sealed_row, sealed(fact))
        assert sealed_row == opened

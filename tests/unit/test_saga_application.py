"""The Sagas application over the in-memory store: events in, commands out, exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import Tracking
from eventsourcing.utils import get_topic
from pydantic import BaseModel

from commands.audit.timeline import history
from commands.contract import messages as m
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from process_managers.application import SagaNotFoundError, SagaNotStartedError, Sagas
from process_managers.compensation_retries import DEFAULT_RETRIES
from process_managers.deadlines import DeadlineIndex, fire_due
from process_managers.outgoing import SagaCommand
from process_managers.saga import OrderFulfillment
from process_managers.state import SagaStatus, StepStatus
from process_managers.steps import StepName
from tests.sagas import T0, TIMEOUT, Order, commands_in

SOURCES = {"orders": "Orders", "payments": "Payments", "inventory": "Inventory",
           "shipping": "Shipping", "notifications": "Notifications"}


class Feed:
    """Delivers integration events to the saga application as a consumer would, and reads what it sends."""

    def __init__(self, app: Sagas) -> None:
        self.app = app
        self.positions: dict[str, int] = {}

    def tracking_for(self, event: m.IntegrationEvent) -> Tracking:
        source = SOURCES[event.context]
        self.positions[source] = self.positions.get(source, 0) + 1
        return Tracking(source, self.positions[source])

    def deliver(self, event: m.IntegrationEvent, tracking: Tracking | None = None) -> list[SagaCommand]:
        """The commands the saga issued on hearing `event`."""
        before = self.app.recorder.max_notification_id() or 0
        self.app.handle_event(event, tracking or self.tracking_for(event))
        return self.issued_since(before)

    def issued_since(self, position: int) -> list[SagaCommand]:
        notifications = self.app.recorder.select_notifications(position, 1000, inclusive_of_start=False)
        return commands_in([self.app.mapper.to_domain_event(n) for n in notifications])


def types(commands: list[SagaCommand]) -> list[str]:
    return [c.type for c in commands]


@pytest.fixture
def clock() -> list[datetime]:
    return [T0]


@pytest.fixture
def sagas(memory_settings: Settings, clock: list[datetime]) -> Iterator[Sagas]:
    app = Sagas(application_env(memory_settings, "OrderFulfillment"), step_timeout=TIMEOUT,
                clock=lambda: clock[0])
    yield app
    app.close()


@pytest.fixture
def feed(sagas: Sagas) -> Feed:
    return Feed(sagas)


def test_a_whole_happy_path_issues_each_command_in_turn_and_completes(feed: Feed, sagas: Sagas) -> None:
    order = Order.new()
    assert types(feed.deliver(order.placed())) == ["ChargePayment"]
    assert types(feed.deliver(order.charged())) == ["ReserveStock"]
    assert types(feed.deliver(order.reserved())) == ["CreateShipment"]
    assert types(feed.deliver(order.shipped())) == ["CommitStock"]
    assert types(feed.deliver(order.committed())) == ["SendNotification"]
    assert types(feed.deliver(order.notified())) == ["CompleteOrder"]
    assert feed.deliver(order.completed()) == []
    saga = sagas.get_saga(order.order_id)
    assert saga.status is SagaStatus.COMPLETED
    assert saga.id == OrderFulfillment.create_id(order.order_id)


def test_a_whole_compensation_path_undoes_in_reverse_and_ends_when_the_order_is_cancelled(
    feed: Feed, sagas: Sagas
) -> None:
    order = Order.new()
    for event in (order.placed(), order.charged(), order.reserved()):
        feed.deliver(event)
    undo = feed.deliver(order.shipment_failed())
    assert [(c.type, c.context) for c in undo] == [("ReleaseStock", "inventory")]
    assert [(c.type, c.context) for c in feed.deliver(order.released())] == [("RefundPayment", "payments")]
    cancel = feed.deliver(order.refunded())
    assert [(c.type, c.context) for c in cancel] == [("CancelOrder", "orders")]
    assert cancel[0].payload["reason"] == "shipment failed: no carrier capacity"
    assert sagas.get_saga(order.order_id).status is SagaStatus.COMPENSATING
    feed.deliver(order.cancelled())
    assert sagas.get_saga(order.order_id).status is SagaStatus.COMPENSATED


def test_the_same_delivery_twice_changes_nothing_the_second_time(feed: Feed, sagas: Sagas) -> None:
    order = Order.new()
    feed.deliver(order.placed())
    tracking = Tracking("Payments", 41)
    assert sagas.handle_event(order.charged(), tracking) is True
    before = sagas.recorder.max_notification_id()
    assert sagas.handle_event(order.charged(), tracking) is False
    assert sagas.recorder.max_notification_id() == before
    assert sagas.get_saga(order.order_id).steps[StepName.INVENTORY].attempts == 1


def test_an_older_message_delivered_after_a_newer_one_is_still_handled(feed: Feed, sagas: Sagas) -> None:
    first, second = Order.new(), Order.new()
    feed.deliver(first.placed())
    feed.deliver(second.placed())
    assert types(feed.deliver(second.charged(), Tracking("Payments", 9))) == ["ReserveStock"]
    assert types(feed.deliver(first.charged(), Tracking("Payments", 8))) == ["ReserveStock"]
    assert sagas.process_recorder.has_tracking_id("Payments", 8)


def test_saga_events_carry_the_order_as_correlation_and_the_message_as_cause(
    feed: Feed, sagas: Sagas
) -> None:
    order = Order.new()
    feed.deliver(order.placed(), Tracking("Orders", 3))
    trail = history(sagas, OrderFulfillment.create_id(order.order_id))
    assert {(e.correlation_id, e.causation_id) for e in trail} == {(order.order_id, "Orders:3")}


def test_an_event_for_an_order_without_a_saga_is_tracked_and_ignored(sagas: Sagas) -> None:
    order = Order.new()
    assert sagas.handle_event(order.charged(), Tracking("Payments", 1)) is True
    assert sagas.recorder.max_notification_id() is None
    assert sagas.handle_event(order.charged(), Tracking("Payments", 1)) is False
    with pytest.raises(SagaNotFoundError):
        sagas.get_saga(order.order_id)


def test_a_cancellation_that_overtakes_its_order_placed_waits_to_be_retried(
    feed: Feed, sagas: Sagas
) -> None:
    order = Order.new()
    cancellation = Tracking("Orders", 2)
    with pytest.raises(SagaNotStartedError):
        sagas.handle_event(order.cancel_requested(), cancellation)
    assert not sagas.has_tracked(cancellation)
    assert types(feed.deliver(order.placed(), Tracking("Orders", 1))) == ["ChargePayment"]
    sagas.handle_event(order.cancel_requested(), cancellation)  # the retry
    assert types(feed.deliver(order.declined())) == ["CancelOrder"]


def test_a_batch_in_one_transaction_decides_as_one_message_at_a_time_would(
    feed: Feed, sagas: Sagas
) -> None:
    order = Order.new()
    with sagas.unit_of_work():
        for position, event in enumerate((order.placed(), order.charged(), order.reserved()), start=1):
            sagas.handle_event(event, Tracking("Contexts", position))
    assert types(feed.issued_since(0)) == ["ChargePayment", "ReserveStock", "CreateShipment"]
    assert sagas.handle_event(order.charged(), Tracking("Contexts", 2)) is False


def test_a_deadline_times_the_step_out_once_and_only_when_it_has_come(feed: Feed, sagas: Sagas) -> None:
    order = Order.new()
    feed.deliver(order.placed())
    assert sagas.time_out(order.order_id, StepName.PAYMENT, 1, T0 + TIMEOUT - timedelta(seconds=1)) is False
    before = sagas.recorder.max_notification_id() or 0
    assert sagas.time_out(order.order_id, "payment", 1, T0 + TIMEOUT) is True
    assert types(feed.issued_since(before)) == ["RefundPayment"]
    assert sagas.time_out(order.order_id, StepName.PAYMENT, 1, T0 + TIMEOUT) is False
    assert sagas.get_saga(order.order_id).steps[StepName.PAYMENT].status is StepStatus.COMPENSATING


def test_the_step_timeout_and_the_clock_come_from_the_constructor(
    memory_settings: Settings, clock: list[datetime]
) -> None:
    app = Sagas(application_env(memory_settings, "OrderFulfillment"),
                step_timeout=timedelta(seconds=7), clock=lambda: clock[0])
    order = Order.new()
    app.handle_event(order.placed(), None)
    assert app.get_saga(order.order_id).steps[StepName.PAYMENT].deadline == T0 + timedelta(seconds=7)
    with pytest.raises(ValueError, match="positive"):
        Sagas(application_env(memory_settings, "OrderFulfillment"), step_timeout=timedelta(0))


def test_two_replies_for_one_saga_handled_at_once_both_take_effect(
    memory_settings: Settings,
) -> None:
    meet = threading.Barrier(2)
    waiting = [0]  # how many more clock readings wait for the other handler

    def clock() -> datetime:
        with lock:
            wait, waiting[0] = waiting[0] > 0, max(0, waiting[0] - 1)
        if wait:
            meet.wait(timeout=5)  # both handlers have loaded the same saga version
        return T0

    lock = threading.Lock()
    app = Sagas(application_env(memory_settings, "OrderFulfillment"), clock=clock)
    order = Order.new()
    app.handle_event(order.placed(), Tracking("Orders", 1))
    waiting[0] = 2
    deliveries: list[tuple[Any, Tracking]] = [
        (order.charged(), Tracking("Payments", 1)), (order.cancel_requested(), Tracking("Orders", 2))]
    threads = [threading.Thread(target=app.handle_event, args=d) for d in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    saga = app.get_saga(order.order_id)
    assert saga.status is SagaStatus.COMPENSATING
    assert saga.steps[StepName.PAYMENT].status in (StepStatus.SUCCEEDED, StepStatus.COMPENSATING)
    assert all(app.has_tracked(tracking) for _, tracking in deliveries)


PINNED_SAGA_TOPICS = {
    f"process_managers.saga:OrderFulfillment.{name}" for name in (
        "Started", "StepRequested", "StepSucceeded", "StepFailed", "StepTimedOut",
        "CompensationStarted", "CompensationRequested", "StepCompensated", "StockCommitRequested",
        "CompletionRequested", "CancellationRequested", "CancellationDeclined", "Completed", "Compensated",
        "AttentionNeeded", "CompensationResumed",
    )
}


def test_the_saga_event_topics_are_pinned_because_stored_events_name_them() -> None:
    found = {get_topic(member) for member in vars(OrderFulfillment).values()
             if isinstance(member, type) and issubclass(member, BaseModel)}
    bases = {get_topic(OrderFulfillment.Event), get_topic(OrderFulfillment.Created)}
    assert found - bases == PINNED_SAGA_TOPICS


def test_a_deadline_set_before_a_restart_fires_from_a_new_instance(sqlite_settings: Settings) -> None:
    env = application_env(sqlite_settings, "OrderFulfillment")
    waiting, answered = Order.new(), Order.new()
    before = Sagas(env, step_timeout=TIMEOUT, clock=lambda: T0)
    for event in (waiting.placed(), answered.placed(), answered.charged()):
        before.handle_event(event, None)
    before.close()

    after = Sagas(env, step_timeout=TIMEOUT, clock=lambda: T0)
    index = DeadlineIndex(after)
    assert {(d.order_id, d.step, d.due) for d in index.pending()} == {
        (waiting.order_id, StepName.PAYMENT, T0 + TIMEOUT),
        (answered.order_id, StepName.INVENTORY, T0 + TIMEOUT),
    }
    assert fire_due(after, index, T0 + TIMEOUT - timedelta(seconds=1)) == 0
    position = after.recorder.max_notification_id() or 0
    assert fire_due(after, index, T0 + TIMEOUT) == 2
    assert sorted(types(Feed(after).issued_since(position))) == ["RefundPayment", "ReleaseStock"]
    # Their undoings are awaited in turn, each until a deadline of its own.
    undone_by = T0 + TIMEOUT + DEFAULT_RETRIES.first_wait
    assert {(d.order_id, d.step, d.due) for d in index.due(T0 + 10 * TIMEOUT)} == {
        (waiting.order_id, StepName.PAYMENT, undone_by), (answered.order_id, StepName.INVENTORY, undone_by),
    }
    after.close()

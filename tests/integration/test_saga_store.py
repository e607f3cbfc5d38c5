"""The saga on a real store: written once, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from eventsourcing.persistence import Tracking

from commands.audit.timeline import history
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from process_managers.application import Clock, Sagas
from process_managers.deadlines import DeadlineIndex, fire_due
from process_managers.saga import OrderFulfillment
from process_managers.state import SagaStatus, StepStatus
from process_managers.steps import StepName
from tests.sagas import T0, TIMEOUT, Order


def new_sagas(settings: Settings, clock: Clock | None = None) -> Sagas:
    return Sagas(application_env(settings, "OrderFulfillment"), step_timeout=TIMEOUT,
                 clock=clock or (lambda: T0))


@pytest.fixture
def sagas(store_settings: Settings) -> Iterator[Sagas]:
    app = new_sagas(store_settings)
    yield app
    app.close()


def test_a_compensated_saga_comes_back_from_the_store_with_its_commands(
    sagas: Sagas, store_settings: Settings
) -> None:
    order = Order.new()
    replies = (order.placed(), order.charged(), order.rejected(), order.refunded(), order.cancelled())
    for position, event in enumerate(replies, start=1):
        sagas.handle_event(event, Tracking("Contexts", position))

    reloaded = new_sagas(store_settings)
    saga = reloaded.get_saga(order.order_id)
    assert saga.status is SagaStatus.COMPENSATED
    assert saga.steps[StepName.PAYMENT].status is StepStatus.COMPENSATED
    assert saga.steps[StepName.PAYMENT].facts["transaction_id"] == "txn_1"
    assert saga.steps[StepName.PAYMENT].attempts == 1
    trail = history(reloaded, saga.id)
    assert [e.type for e in trail][-3:] == [
        "OrderFulfillment.StepCompensated", "OrderFulfillment.CancellationRequested",
        "OrderFulfillment.Compensated"]
    sent = [e.data["command"] for e in trail if "command" in e.data]
    assert [c["type"] for c in sent] == ["ChargePayment", "ReserveStock", "RefundPayment", "CancelOrder"]
    assert {c["payload"]["correlation_id"] for c in sent} == {str(order.order_id)}
    assert trail[1].data["deadline"].startswith("2026-03-01T12:00:30")
    reloaded.close()


def test_one_order_has_one_saga_however_often_and_wherever_it_is_started(
    store_settings: Settings,
) -> None:
    meet = threading.Barrier(2)
    first_reads = threading.Semaphore(2)

    def clock() -> datetime:
        if first_reads.acquire(blocking=False):
            meet.wait(timeout=10)  # both replicas found no saga and are about to start one
        return T0

    replicas = [new_sagas(store_settings, clock) for _ in range(2)]
    order = Order.new()
    threads = [
        threading.Thread(target=app.handle_event, args=(order.placed(), Tracking("Orders", n)))
        for n, app in enumerate(replicas, start=1)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    replicas[0].handle_event(order.placed(), Tracking("Orders", 3))  # placed heard yet again

    saga_id = OrderFulfillment.create_id(order.order_id)
    trail = history(replicas[0], saga_id)
    assert [e.type for e in trail] == ["OrderFulfillment.Started", "OrderFulfillment.StepRequested"]
    assert replicas[1].get_saga(order.order_id).id == saga_id
    assert all(replicas[0].process_recorder.has_tracking_id("Orders", n) for n in (1, 2, 3))
    for app in replicas:
        app.close()


def test_a_pending_deadline_survives_a_restart_and_fires_once(store_settings: Settings) -> None:
    order = Order.new()
    before = new_sagas(store_settings)
    before.handle_event(order.placed(), Tracking("Orders", 1))
    before.close()

    after = new_sagas(store_settings)
    index = DeadlineIndex(after)
    assert [(d.order_id, d.step, d.due) for d in index.pending()] == [
        (order.order_id, StepName.PAYMENT, T0 + TIMEOUT)]
    assert fire_due(after, index, T0 + TIMEOUT) == 1
    assert fire_due(after, DeadlineIndex(after), T0 + TIMEOUT) == 0
    assert after.get_saga(order.order_id).steps[StepName.PAYMENT].status is StepStatus.COMPENSATING
    after.close()


def test_the_deadlines_take_this_process_s_saves_as_handed_over_and_another_s_from_the_store(
    sagas: Sagas, store_settings: Settings
) -> None:
    earlier = Order.new()
    sagas.handle_event(earlier.placed(), None)
    index = DeadlineIndex(sagas)  # a new index reads what is already there from the store
    log = index.log.log
    read_from_store: list[int | None] = []
    select_notifications = log.select_notifications

    def counted(start: int | None, *args: Any, **kwargs: Any) -> Any:
        read_from_store.append(start)
        return select_notifications(start, *args, **kwargs)

    index.log.log = SimpleNamespace(select_notifications=counted, max_notification_id=log.max_notification_id)
    here, there = Order.new(), Order.new()
    sagas.handle_event(here.placed(), None)
    index.catch_up()
    assert {d.order_id for d in index.pending()} == {earlier.order_id, here.order_id}
    assert read_from_store == []  # this process's save was handed to the index as it committed

    elsewhere = new_sagas(store_settings)
    try:
        elsewhere.handle_event(there.placed(), None)
    finally:
        elsewhere.close()
    sagas.handle_event(here.charged(), None)
    index.catch_up()
    assert {(d.order_id, d.step) for d in index.pending()} == {
        (earlier.order_id, StepName.PAYMENT), (here.order_id, StepName.INVENTORY),
        (there.order_id, StepName.PAYMENT)}
    assert read_from_store  # another process's save is read from the store, and what follows it too

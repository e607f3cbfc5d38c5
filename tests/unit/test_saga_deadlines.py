"""The deadline index: which step deadlines are pending, read from the saga log, and firing them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from infra.eventstore.key_tables import MemoryKeyTable
from infra.eventstore.master_key import MasterKey
from infra.eventstore.persistence import application_env
from infra.eventstore.privacy import PersonalDataKeys
from infra.settings import Settings
from process_managers.application import Sagas
from process_managers.compensation_retries import DEFAULT_RETRIES
from process_managers.deadlines import DeadlineIndex, fire_due
from process_managers.state import StepStatus
from process_managers.steps import StepName
from tests.sagas import T0, TIMEOUT, Order

PAYMENT, INVENTORY, SHIPPING, NOTIFICATION = StepName


@pytest.fixture
def clock() -> list[datetime]:
    return [T0]


@pytest.fixture
def sagas(memory_settings: Settings, clock: list[datetime]) -> Iterator[Sagas]:
    app = Sagas(application_env(memory_settings, "OrderFulfillment"), step_timeout=TIMEOUT,
                clock=lambda: clock[0])
    yield app
    app.close()


def pending(index: DeadlineIndex) -> list[tuple[UUID, StepName, int, datetime]]:
    index.catch_up()
    return [(d.order_id, d.step, d.attempt, d.due) for d in index.pending()]


def test_the_index_follows_each_requested_step_and_undoing_and_forgets_it_once_answered(
    sagas: Sagas,
) -> None:
    index = DeadlineIndex(sagas)
    order = Order.new()
    assert pending(index) == []
    sagas.handle_event(order.placed(), None)
    assert pending(index) == [(order.order_id, PAYMENT, 1, T0 + TIMEOUT)]
    sagas.handle_event(order.charged(), None)
    assert pending(index) == [(order.order_id, INVENTORY, 1, T0 + TIMEOUT)]
    sagas.handle_event(order.rejected(), None)
    assert pending(index) == [(order.order_id, PAYMENT, 1, T0 + DEFAULT_RETRIES.first_wait)]  # the refund
    sagas.handle_event(order.refunded(), None)
    assert pending(index) == []


def test_a_completed_saga_leaves_no_deadline_behind(sagas: Sagas) -> None:
    order = Order.new()
    for event in (order.placed(), *order.happy_replies(), order.completed()):
        sagas.handle_event(event, None)
    assert pending(DeadlineIndex(sagas)) == []


def test_a_saga_that_ends_takes_only_its_own_deadlines_with_it(sagas: Sagas) -> None:
    index = DeadlineIndex(sagas)
    ending, waiting = Order.new(), Order.new()
    sagas.handle_event(waiting.placed(), None)
    for event in (ending.placed(), *ending.happy_replies(), ending.completed()):
        sagas.handle_event(event, None)
    assert pending(index) == [(waiting.order_id, PAYMENT, 1, T0 + TIMEOUT)]


def test_due_lists_only_what_has_come_soonest_first(sagas: Sagas, clock: list[datetime]) -> None:
    early, late = Order.new(), Order.new()
    sagas.handle_event(early.placed(), None)
    clock[0] = T0 + timedelta(seconds=10)
    sagas.handle_event(late.placed(), None)
    index = DeadlineIndex(sagas)
    assert index.due(T0 + TIMEOUT - timedelta(microseconds=1)) == []
    assert [d.order_id for d in index.due(T0 + TIMEOUT)] == [early.order_id]
    assert [d.order_id for d in index.due(T0 + 2 * TIMEOUT)] == [early.order_id, late.order_id]


def test_firing_times_the_step_out_once_however_often_it_is_fired(sagas: Sagas) -> None:
    order = Order.new()
    sagas.handle_event(order.placed(), None)
    index, other = DeadlineIndex(sagas), DeadlineIndex(sagas)
    assert fire_due(sagas, index, T0 + TIMEOUT) == 1
    assert fire_due(sagas, other, T0 + TIMEOUT) == 0  # a second scheduler, or a replica
    assert fire_due(sagas, index, T0 + TIMEOUT) == 0
    saga = sagas.get_saga(order.order_id)
    assert saga.steps[PAYMENT].status is StepStatus.COMPENSATING
    refund_awaited = [(order.order_id, PAYMENT, 1, T0 + TIMEOUT + DEFAULT_RETRIES.first_wait)]
    assert pending(index) == pending(other) == refund_awaited


def test_the_deadline_of_a_step_answered_meanwhile_is_dropped_for_the_next_steps(sagas: Sagas) -> None:
    order = Order.new()
    sagas.handle_event(order.placed(), None)
    index = DeadlineIndex(sagas)
    sagas.handle_event(order.charged(), None)
    assert fire_due(sagas, index, T0 + TIMEOUT) == 1  # the inventory step's, not the payment's
    saga = sagas.get_saga(order.order_id)
    assert saga.steps[INVENTORY].status is StepStatus.COMPENSATING
    assert saga.steps[PAYMENT].status is StepStatus.SUCCEEDED  # refunded only once the release is confirmed


class FailsOnce:
    def __init__(self, sagas: Sagas) -> None:
        self.sagas = sagas
        self.calls = 0

    def time_out(
        self, order_id: UUID, step: StepName | str, attempt: int, now: datetime | None = None
    ) -> bool:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("database unreachable")
        return self.sagas.time_out(order_id, step, attempt, now)


def test_a_deadline_that_fails_to_fire_stays_pending_and_fires_next_time(sagas: Sagas) -> None:
    order = Order.new()
    sagas.handle_event(order.placed(), None)
    index, flaky = DeadlineIndex(sagas), FailsOnce(sagas)
    assert index.fire_due(flaky, T0 + TIMEOUT) == 0
    assert len(index.due(T0 + TIMEOUT)) == 1
    assert index.fire_due(flaky, T0 + TIMEOUT) == 1


class SmallPages(DeadlineIndex):
    page_size = 2


def test_the_index_reads_a_long_log_page_by_page(sagas: Sagas) -> None:
    orders = [Order.new() for _ in range(5)]
    for order in orders:
        sagas.handle_event(order.placed(), None)
    index = SmallPages(sagas)
    assert {d.order_id for d in index.pending()} == {o.order_id for o in orders}
    assert index.position == sagas.recorder.max_notification_id()


class AskedKeyTable(MemoryKeyTable):
    """A key table that counts how often a reader asks it for keys."""

    asked = 0

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        self.asked += 1
        return super().get_many(subjects)


def test_the_index_reads_its_deadlines_with_the_customer_s_address_left_sealed(sagas: Sagas) -> None:
    mapper: Any = sagas.mapper
    mapper.personal = PersonalDataKeys(MemoryKeyTable(), MasterKey(None))
    order = Order.new()
    sagas.handle_event(order.placed(), None)
    [started] = [n for n in sagas.recorder.select_notifications(1, 10) if n.topic.endswith(".Started")]
    assert mapper.personal.may_hold_sealed(started.state)  # the saga keeps the order's address sealed
    table = AskedKeyTable()
    mapper.personal = PersonalDataKeys(table, MasterKey(None))  # a process with no key at hand

    assert pending(DeadlineIndex(sagas)) == [(order.order_id, PAYMENT, 1, T0 + TIMEOUT)]
    assert table.asked == 0  # no key looked up: a deadline names no person

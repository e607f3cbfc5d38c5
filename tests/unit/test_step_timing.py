"""Saga steps are timed from the saga's own events, in the order its relay reads them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from prometheus_client import CollectorRegistry, Histogram

from infra.observability.step_timing import STEP_BUCKETS, StepClock
from process_managers.saga import OrderFulfillment
from tests.sagas import T0


class SagaLog:
    """A saga's notifications as its relay reads them, each with its stored state."""

    def __init__(self) -> None:
        self.position = 0

    def next(self, saga: UUID, event: type[Any], seconds: float, **state: Any) -> tuple[Notification, Any]:
        self.position += 1
        notification = Notification(id=self.position, originator_id=saga, originator_version=self.position,
                                    topic=get_topic(event), state=b"")
        at = T0 + timedelta(seconds=seconds)
        return notification, {"timestamp": at.isoformat().replace("+00:00", "Z"), **state}


def clock() -> tuple[StepClock, CollectorRegistry]:
    registry = CollectorRegistry()
    seconds = Histogram("saga_step_seconds", "", ["step", "outcome"], buckets=STEP_BUCKETS, registry=registry)
    return StepClock(seconds), registry


def timed(registry: CollectorRegistry, step: str, outcome: str) -> tuple[float, float]:
    """How many steps were timed with these labels, and their total seconds."""
    labels = {"step": step, "outcome": outcome}
    count = registry.get_sample_value("saga_step_seconds_count", labels) or 0.0
    return count, registry.get_sample_value("saga_step_seconds_sum", labels) or 0.0


def test_a_step_is_timed_from_its_request_to_its_outcome_and_an_undoing_from_its_own_request() -> None:
    steps, registry = clock()
    log, saga = SagaLog(), uuid4()
    for notification, state in (
        log.next(saga, OrderFulfillment.StepRequested, 0.0, step="payment"),
        log.next(saga, OrderFulfillment.StepSucceeded, 0.25, step="payment"),
        log.next(saga, OrderFulfillment.StepRequested, 0.5, step="inventory"),
        log.next(saga, OrderFulfillment.StepFailed, 2.0, step="inventory"),
        log.next(saga, OrderFulfillment.CompensationRequested, 2.0, step="payment"),
        log.next(saga, OrderFulfillment.StepCompensated, 3.0, step="payment"),
    ):
        steps.read(notification, state)
    assert timed(registry, "payment", "succeeded") == (1, 0.25)
    assert timed(registry, "inventory", "failed") == (1, 1.5)
    assert timed(registry, "payment", "compensated") == (1, 1.0)
    assert steps.asked == {saga: {}}


def test_a_window_read_again_after_a_failed_publish_times_nothing_twice() -> None:
    steps, registry = clock()
    log, saga = SagaLog(), uuid4()
    window = [log.next(saga, OrderFulfillment.StepRequested, 0.0, step="shipping"),
              log.next(saga, OrderFulfillment.StepTimedOut, 30.0, step="shipping")]
    for _ in range(2):
        for notification, state in window:
            steps.read(notification, state)
    assert timed(registry, "shipping", "timed_out") == (1, 30.0)


def test_an_outcome_whose_request_came_before_the_relay_started_is_not_timed() -> None:
    steps, registry = clock()
    log, saga = SagaLog(), uuid4()
    log.next(saga, OrderFulfillment.StepRequested, 0.0, step="payment")  # read by an earlier relay
    steps.read(*log.next(saga, OrderFulfillment.StepSucceeded, 1.0, step="payment"))
    assert timed(registry, "payment", "succeeded") == (0, 0)


def test_a_finished_saga_is_forgotten_even_with_a_step_still_awaited() -> None:
    steps, _ = clock()
    log, saga = SagaLog(), uuid4()
    steps.read(*log.next(saga, OrderFulfillment.StepRequested, 0.0, step="notification"))
    steps.read(*log.next(saga, OrderFulfillment.Completed, 1.0))
    assert steps.asked == {}

"""Prometheus metrics of the saga's moving parts: consumers, relays, steps, outcomes and projections.

One `SagaMetrics` per process, owned by the Runtime, with a registry of its
own, so two runtimes in one process (tests) never share a count. The hot path
pays a few counter increments per batch, never one per message, and one
histogram observation per saga step that ends (`infra.observability.step_timing`); the
relays' and the projections' lag is read only when the metrics are scraped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import stamina
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from stamina.instrumentation import RetryDetails

from infra.messaging.bus import Delivery, Outcome, Subscription, Verdict
from infra.observability.step_timing import STEP_BUCKETS, StepClock
from process_managers.saga import OrderFulfillment
from projections import tracking
from projections.runner import Projector

log = logging.getLogger(__name__)

T = TypeVar("T")
Translate = Callable[[str, Notification, Any], T]

CONSUMED_OUTCOMES = {Verdict.DONE: "done", Verdict.RETRY: "retried", Verdict.PARK: "parked"}
SAGA_OUTCOMES = {
    get_topic(OrderFulfillment.Completed): "completed",
    get_topic(OrderFulfillment.Compensated): "compensated",
    # Not an end: the saga waits for an operator's retrySaga, so someone must be told.
    get_topic(OrderFulfillment.AttentionNeeded): "needs_attention",
}
LAG = "saga_relay_lag_notifications"
LAG_HELP = "Notifications an application recorded that its relay has not yet published"
PROJECTION_LAG = "saga_projection_lag_notifications"
PROJECTION_LAG_HELP = "Notifications an application recorded that a projection has not yet applied"
POSITIONS_WITHIN = 2.0  # seconds a scrape waits for the read store's positions


class Lagging(Protocol):
    """What the lag gauge needs of a relay."""

    @property
    def position(self) -> int | None: ...

    def lag(self) -> int: ...


class SagaMetrics:
    """The process's saga metrics; `registry` is what `/metrics` exposes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.consumed = Counter(
            "saga_messages_consumed", "Messages handled by a consumer, by queue and the handler's verdict",
            ["queue", "outcome"], registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "saga_consumer_batch_seconds", "Time a consumer takes to handle one batch", ["queue"],
            registry=self.registry,
        )
        self.published = Counter(
            "saga_envelopes_published",
            "Envelopes the relays published and the broker confirmed, by exchange and routing key "
            "(a command's key starts with the queue it goes to: payments.ChargePayment)",
            ["exchange", "routing_key"], registry=self.registry,
        )
        self.sagas = Counter(
            "saga_outcomes", "Sagas that finished (completed, compensated), or that reached NEEDS_ATTENTION "
            "(needs_attention), as their relay saw them", ["outcome"],
            registry=self.registry,
        )
        for outcome in SAGA_OUTCOMES.values():  # at 0 from the start, so an alert on an increase can fire
            self.sagas.labels(outcome)
        self.step_seconds = Histogram(
            "saga_step_seconds", "Time from the saga asking for a step (or for its undoing, outcome "
            "compensated) to recording its outcome, as the saga's relay reads them", ["step", "outcome"],
            buckets=STEP_BUCKETS, registry=self.registry,
        )
        self.loop_restarts = Counter(
            "saga_loop_restarts", "Restarts of a background loop (a relay, the deadlines, the projector) "
            "after it failed", ["loop"], registry=self.registry,
        )
        self.retries = Counter(
            "saga_retries", "Operations tried again after a transient failure, by what was tried "
            "(an API command that kept conflicting, a relay waiting for a role) and the error",
            ["operation", "error"], registry=self.registry,
        )
        self._steps = StepClock(self.step_seconds)
        self._relays = _RelayLag()
        self._projections = _ProjectionLag()
        self.registry.register(self._relays)
        self.registry.register(self._projections)

    def count_retries(self) -> None:
        """Count every retry that stamina schedules in this process here, and log it at DEBUG.

        stamina's own hooks would log each retry as a WARNING, and count it in the
        default registry, which `/metrics` does not serve; whoever retries says
        what matters to an operator itself (a relay names the roles it waits for).
        """
        def counted(details: RetryDetails) -> None:
            self.retries.labels(details.name, type(details.caused_by).__name__).inc()
            log.debug("trying %s again (%d) in %.2f s after %r", details.name, details.retry_num,
                      details.wait_for, details.caused_by)

        stamina.instrumentation.set_on_retry_hooks([counted])

    def instrumented(self, subscription: Subscription) -> Subscription:
        """The subscription, its handler counting verdicts and timing batches on its queue."""
        queue, handler = subscription.queue, subscription.handler
        counters = {v: self.consumed.labels(queue, name) for v, name in CONSUMED_OUTCOMES.items()}
        timer = self.batch_seconds.labels(queue)

        async def handle(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
            started = time.perf_counter()
            try:
                outcomes = await handler(deliveries)
            except Exception:
                # The bus retries every delivery of a batch whose handler raised.
                counters[Verdict.RETRY].inc(len(deliveries))
                raise
            finally:
                timer.observe(time.perf_counter() - started)
            for verdict, count in _tally(outcomes):
                counters[verdict].inc(count)
            return outcomes

        return replace(subscription, handler=handle)

    def loop_restarted(self, loop: str) -> None:
        self.loop_restarts.labels(loop).inc()

    def published_envelopes(self, exchange: str, routing_key: str, count: int) -> None:
        self.published.labels(exchange, routing_key).inc(count)

    def finished_sagas(self, notifications: Iterable[Notification]) -> None:
        """Count the Completed, Compensated and AttentionNeeded events among a relay's notifications."""
        for notification in notifications:
            outcome = SAGA_OUTCOMES.get(notification.topic)
            if outcome is not None:
                self.sagas.labels(outcome).inc()

    def timing_steps(self, translate: Translate[T]) -> Translate[T]:
        """The saga relay's translation, timing each saga step from the saga events it reads on the way."""

        def time_then_translate(source: str, notification: Notification, state: Any) -> T:
            self._steps.read(notification, state)
            return translate(source, notification, state)

        return time_then_translate

    def watch_lag(self, application: str, relay: Lagging) -> None:
        """Report the relay's lag (notifications recorded, not yet published) on every scrape."""
        self._relays.relays.append((application, relay))

    def watch_projections(self, projector: Projector, loop: asyncio.AbstractEventLoop) -> None:
        """Report each projection's lag behind each application it follows, on every scrape.

        `loop` runs the projector: its read store is read there, since a scrape is
        served from a worker thread.
        """
        self._projections.projector = (projector, loop)


def _tally(outcomes: Sequence[Outcome]) -> Iterator[tuple[Verdict, int]]:
    done = sum(1 for o in outcomes if o.verdict is Verdict.DONE)
    if done:
        yield Verdict.DONE, done
    if done < len(outcomes):
        for verdict in (Verdict.RETRY, Verdict.PARK):
            count = sum(1 for o in outcomes if o.verdict is verdict)
            if count:
                yield verdict, count


class _RelayLag(Collector):
    def __init__(self) -> None:
        self.relays: list[tuple[str, Lagging]] = []

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(LAG, LAG_HELP, labels=["application"])
        for application, relay in self.relays:
            if relay.position is None:
                continue  # not started, or another copy leads: its lag is that copy's to report
            try:
                gauge.add_metric([application], relay.lag())
            except Exception:  # a store that does not answer now is reported by /readyz, not here
                continue
        yield gauge

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(LAG, LAG_HELP, labels=["application"])]


class _ProjectionLag(Collector):
    def __init__(self) -> None:
        self.projector: tuple[Projector, asyncio.AbstractEventLoop] | None = None

    def collect(self) -> Iterable[Metric]:
        gauge = _projection_lag_family()
        positions = self._positions()
        if self.projector is not None and positions is not None:
            projector = self.projector[0]
            for name, app in projector.applications.items():
                try:
                    head = app.recorder.max_notification_id() or 0
                except Exception:  # an event store that does not answer now is reported by /readyz
                    continue
                for projection in projector.projections:
                    if name in projection.applications:
                        at = positions.get((projection.tracking_name, name), 0)
                        gauge.add_metric([projection.name, name], max(0, head - at))
        yield gauge

    def describe(self) -> Iterable[Metric]:
        return [_projection_lag_family()]

    def _positions(self) -> dict[tuple[str, str], int] | None:
        """Every projection's positions, read on the projector's loop; None when they cannot be had now."""
        if self.projector is None:
            return None
        projector, loop = self.projector
        try:
            if asyncio.get_running_loop() is loop:
                return None  # scraped on the projector's own loop, which cannot wait for itself
        except RuntimeError:
            pass  # a worker thread, as /metrics is served

        async def read() -> dict[tuple[str, str], int]:
            return await tracking.all_positions(projector.store)

        reading = read()
        try:
            future = asyncio.run_coroutine_threadsafe(reading, loop)
        except RuntimeError:  # the loop has closed
            reading.close()
            return None
        try:
            return future.result(POSITIONS_WITHIN)
        except Exception:  # the read store does not answer now, or the projector has closed
            future.cancel()
            return None


def _projection_lag_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(PROJECTION_LAG, PROJECTION_LAG_HELP, labels=["projection", "application"])

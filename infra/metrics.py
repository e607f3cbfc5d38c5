"""Prometheus metrics of the saga's moving parts: consumers, relays and outcomes.

One `SagaMetrics` per process, owned by the Runtime, with a registry of its
own, so two runtimes in one process (tests) never share a count. The hot path
pays a few counter increments per batch, never one per message; the relays'
lag is read only when the metrics are scraped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Protocol

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from infra.bus import Delivery, Outcome, Subscription, Verdict
from process_managers.saga import OrderFulfillment

CONSUMED_OUTCOMES = {Verdict.DONE: "done", Verdict.RETRY: "retried", Verdict.PARK: "parked"}
SAGA_OUTCOMES = {
    get_topic(OrderFulfillment.Completed): "completed",
    get_topic(OrderFulfillment.Compensated): "compensated",
}
LAG = "saga_relay_lag_notifications"
LAG_HELP = "Notifications an application recorded that its relay has not yet published"


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
            "saga_envelopes_published", "Envelopes the relays published and the broker confirmed",
            ["exchange"], registry=self.registry,
        )
        self.sagas = Counter(
            "saga_outcomes", "Sagas that finished, as their relay saw them", ["outcome"],
            registry=self.registry,
        )
        self._relays = _RelayLag()
        self.registry.register(self._relays)

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

    def published_envelopes(self, exchange: str, count: int) -> None:
        self.published.labels(exchange).inc(count)

    def finished_sagas(self, notifications: Iterable[Notification]) -> None:
        """Count the Completed and Compensated events among a relay's notifications."""
        for notification in notifications:
            outcome = SAGA_OUTCOMES.get(notification.topic)
            if outcome is not None:
                self.sagas.labels(outcome).inc()

    def watch_lag(self, application: str, relay: Lagging) -> None:
        """Report the relay's lag (notifications recorded, not yet published) on every scrape."""
        self._relays.relays.append((application, relay))


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

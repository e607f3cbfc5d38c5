"""The saga's metrics count what the consumers and relays did, and every role serves them at /metrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from uuid import UUID, uuid4

from prometheus_client.parser import text_string_to_metric_families

from commands.contract.messages import Envelope
from commands.orders import PlaceOrder
from commands.simulation import ChargeResult, Refused
from domain.values import Money
from infra.bootstrap import System
from infra.messaging.bus import COMMANDS_EXCHANGE, EVENTS_EXCHANGE
from infra.messaging.consumers import SAGA_QUEUE
from infra.observability.metrics import SagaMetrics
from infra.runtime import CONTEXT_ROLES
from infra.settings import Settings
from process_managers.state import SagaStatus
from read_api.app import create_app, create_health_app
from tests.api_harness import api_client
from tests.fakes import ADDRESS, FakeGateway
from tests.saga_harness import (
    KEYBOARD,
    LAPTOP,
    MOUSE,
    WORKER_ROLES,
    Stack,
    finished,
    place,
    running,
    until,
)
from tests.saga_harness import test_bus as in_process_bus

SAGA_METRICS = ("saga_messages_consumed_total", "saga_envelopes_published_total", "saga_outcomes_total",
                "saga_consumer_batch_seconds_bucket", "saga_relay_lag_notifications",
                "saga_step_seconds_bucket")


def consumed(metrics: SagaMetrics, queue: str, outcome: str = "done") -> float:
    return metrics.registry.get_sample_value(
        "saga_messages_consumed_total", {"queue": queue, "outcome": outcome}) or 0.0


def published(metrics: SagaMetrics, exchange: str, key_prefix: str = "") -> float:
    """Envelopes published to `exchange` whose routing key starts with `key_prefix`."""
    return sum(
        sample.value
        for metric in metrics.registry.collect() if metric.name == "saga_envelopes_published"
        for sample in metric.samples
        if sample.name == "saga_envelopes_published_total" and sample.labels["exchange"] == exchange
        and sample.labels["routing_key"].startswith(key_prefix)
    )


def sagas(metrics: SagaMetrics, outcome: str) -> float:
    return metrics.registry.get_sample_value("saga_outcomes_total", {"outcome": outcome}) or 0.0


async def test_every_message_published_is_counted_once_consumed_and_every_finished_saga_once(
    stack: Stack,
) -> None:
    metrics = SagaMetrics()
    async with running(*stack, metrics=metrics) as system:
        orders = [place(system, (LAPTOP, 1)) for _ in range(3)] + [place(system, (MOUSE, 2), (KEYBOARD, 31))]
        statuses = [(await finished(system, order_id)).status for order_id in orders]

        def settled() -> bool:
            # A command's routing key names its queue (payments.ChargePayment): each queue's count matches.
            return (
                consumed(metrics, SAGA_QUEUE) == published(metrics, EVENTS_EXCHANGE)
                and all(consumed(metrics, queue) == published(metrics, COMMANDS_EXCHANGE, f"{queue}.")
                        for queue in CONTEXT_ROLES)
                and sagas(metrics, "completed") + sagas(metrics, "compensated") == len(orders)
            )

        await until(settled)

    assert statuses == [SagaStatus.COMPLETED] * 3 + [SagaStatus.COMPENSATED]
    assert (sagas(metrics, "completed"), sagas(metrics, "compensated")) == (3, 1)
    # Each order is placed, charged, reserved and so on: every context hears from the saga.
    assert all(consumed(metrics, queue) >= len(orders) for queue in ("orders", "payments", "inventory"))
    assert consumed(metrics, SAGA_QUEUE) >= 4 * len(orders)
    batches = metrics.registry.get_sample_value("saga_consumer_batch_seconds_count", {"queue": SAGA_QUEUE})
    assert batches is not None and batches > 0


async def test_a_command_no_context_handles_is_counted_as_parked(memory_settings: Settings) -> None:
    metrics, bus = SagaMetrics(), in_process_bus()
    async with running(memory_settings, bus, metrics=metrics):
        await bus.publish(COMMANDS_EXCHANGE, [Envelope(
            message_id=str(uuid4()), type="LaunchRocket", kind="command", occurred_at=datetime.now(UTC),
            source="OrderFulfillment", position=1, routing_key="orders.LaunchRocket", payload={},
        )])
        await until(lambda: consumed(metrics, "orders", "parked") == 1)
        parked = await bus.dead_letters("orders")

    assert consumed(metrics, "orders", "done") == 0
    assert [letter.message_type for letter in parked] == ["LaunchRocket"]


async def test_a_worker_and_the_api_serve_the_saga_metrics_in_the_text_format(
    memory_settings: Settings,
) -> None:
    metrics = SagaMetrics()
    async with running(memory_settings, metrics=metrics) as system:
        await finished(system, place(system))
        await until(lambda: sagas(metrics, "completed") == 1)

        async def ready() -> dict[str, str]:
            return {"status": "ok"}

        for app in (create_health_app("payments", ready, registry=metrics.registry),
                    create_app(registry=metrics.registry)):
            async with api_client(app) as client:
                response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            text = response.text
            assert all(name in text for name in SAGA_METRICS), text
            assert 'saga_messages_consumed_total{outcome="done",queue="payments"}' in text
            assert 'saga_outcomes_total{outcome="completed"} 1.0' in text
            assert 'saga_relay_lag_notifications{application="Orders"}' in text


class MoodyGateway(FakeGateway):
    """Declines one customer's cards, and is down for the first two attempts to charge another's."""

    def __init__(self, declines: UUID, down_for: UUID) -> None:
        super().__init__()
        self.declines, self.down_for, self.down_left = declines, down_for, 2

    def charge(self, *, order_id: UUID, customer_id: UUID, amount: Money) -> ChargeResult:
        with self._lock:
            down = customer_id == self.down_for and self.down_left > 0
            self.down_left -= down
        if down:
            raise ConnectionError("the payment gateway is not answering")
        if customer_id == self.declines:
            return Refused("card declined")
        return super().charge(order_id=order_id, customer_id=customer_id, amount=amount)


def place_for(system: System, customer_id: UUID, *lines: tuple[UUID, int]) -> UUID:
    items = [{"product_id": p, "quantity": q} for p, q in (lines or ((MOUSE, 1),))]
    command = PlaceOrder(customer_id=customer_id, items=items, shipping_address=ADDRESS)
    return system.orders.place_order(command)


async def scrape(metrics: SagaMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample the projector role's /metrics serves, by name and labels."""
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    async with api_client(create_health_app("projector", ready, registry=metrics.registry)) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text) for sample in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def steps(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], outcome: str) -> dict[str, float]:
    """How many of each step ended with `outcome`, from the step histogram's counts."""
    return {
        dict(labels)["step"]: value for (name, labels), value in samples.items()
        if name == "saga_step_seconds_count" and dict(labels)["outcome"] == outcome
    }


async def test_steps_lag_retries_and_parked_messages_are_read_back_from_metrics(stack: Stack) -> None:
    metrics, declined, unlucky = SagaMetrics(), uuid4(), uuid4()
    gateway = MoodyGateway(declines=declined, down_for=unlucky)
    settings, bus = stack
    async with running(settings, bus, roles=(*WORKER_ROLES, "projector"), metrics=metrics,
                       gateway=gateway) as system:
        orders = [place_for(system, uuid4()) for _ in range(2)] + [place_for(system, unlucky)]
        orders += [place_for(system, declined), place_for(system, uuid4(), (MOUSE, 2), (KEYBOARD, 31))]
        statuses = [(await finished(system, order_id)).status for order_id in orders]
        await bus.publish(COMMANDS_EXCHANGE, [Envelope(
            message_id=str(uuid4()), type="LaunchRocket", kind="command", occurred_at=datetime.now(UTC),
            source="OrderFulfillment", position=1, routing_key="orders.LaunchRocket", payload={},
        )])
        await until(lambda: sagas(metrics, "completed") + sagas(metrics, "compensated") == len(orders)
                    and consumed(metrics, "orders", "parked") == 1)
        deadline = time.monotonic() + 10
        while True:  # the projector catches up with the last events
            samples = await scrape(metrics)
            lags = {labels: value for (name, labels), value in samples.items()
                    if name == "saga_projection_lag_notifications"}
            if (lags and not any(lags.values())) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)

    assert statuses == [SagaStatus.COMPLETED] * 3 + [SagaStatus.COMPENSATED] * 2
    # Four charges (the stock-rejected order's too), three reservations, shipments and notifications.
    assert steps(samples, "succeeded") == {"payment": 4, "inventory": 3, "shipping": 3, "notification": 3}
    assert steps(samples, "failed") == {"payment": 1, "inventory": 1}
    assert steps(samples, "compensated") == {"payment": 1}  # the charge of the order out of stock, refunded
    assert steps(samples, "timed_out") == {}
    every = sample(samples, "saga_step_seconds_bucket", step="payment", outcome="succeeded", le="60.0")
    assert every == 4 and sample(samples, "saga_step_seconds_sum", step="payment", outcome="succeeded") > 0
    # Every projection follows each of its applications to the end.
    assert {(dict(labels)["projection"], dict(labels)["application"]) for labels in lags} >= {
        ("order_summary", "Orders"), ("order_summary", "OrderFulfillment"), ("payment_status", "Payments"),
        ("stock_levels", "Inventory"), ("shipment_tracking", "Shipping"),
        ("notification_log", "Notifications"), ("saga_progress", "OrderFulfillment"),
    }
    assert set(lags.values()) == {0.0}
    # The unlucky charge was retried until the gateway answered; the unknown command was parked.
    assert sample(samples, "saga_messages_consumed_total", queue="payments", outcome="retried") >= 1
    assert sample(samples, "saga_messages_consumed_total", queue="orders", outcome="parked") == 1

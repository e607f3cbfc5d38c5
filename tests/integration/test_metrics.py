"""The saga's metrics count what the consumers and relays did, and every role serves them at /metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from commands.messages import Envelope
from infra.bus import COMMANDS_EXCHANGE, EVENTS_EXCHANGE
from infra.consumers import SAGA_QUEUE
from infra.metrics import SagaMetrics
from infra.runtime import CONTEXT_ROLES
from infra.settings import Settings
from process_managers.state import SagaStatus
from read_api.app import create_app, create_health_app
from tests.api_harness import api_client
from tests.saga_harness import KEYBOARD, LAPTOP, MOUSE, Stack, finished, place, running, until
from tests.saga_harness import test_bus as in_process_bus

SAGA_METRICS = ("saga_messages_consumed_total", "saga_envelopes_published_total", "saga_outcomes_total",
                "saga_consumer_batch_seconds_bucket", "saga_relay_lag_notifications")


def consumed(metrics: SagaMetrics, queue: str, outcome: str = "done") -> float:
    return metrics.registry.get_sample_value(
        "saga_messages_consumed_total", {"queue": queue, "outcome": outcome}) or 0.0


def published(metrics: SagaMetrics, exchange: str) -> float:
    return metrics.registry.get_sample_value("saga_envelopes_published_total", {"exchange": exchange}) or 0.0


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
            commands = sum(consumed(metrics, queue) for queue in CONTEXT_ROLES)
            return (
                consumed(metrics, SAGA_QUEUE) == published(metrics, EVENTS_EXCHANGE)
                and commands == published(metrics, COMMANDS_EXCHANGE)
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

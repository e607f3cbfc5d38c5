"""A role nobody runs, on RabbitMQ: its queue can be declared beforehand, and otherwise it is named.

Declared beforehand (`saga migrate`), messages for the role wait in its queue
until it starts. Not declared, the relay says once which role to start and
publishes as soon as the queue exists; readiness names the roles nobody runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from uuid import UUID, uuid4

import pytest

from commands.contract.messages import Envelope
from commands.orders import Orders, PlaceOrder
from infra.bootstrap import assemble, bootstrap
from infra.eventstore.persistence import application_env
from infra.messaging.bus import (
    COMMANDS_EXCHANGE,
    BatchHandler,
    Bus,
    QueueBinding,
    Subscription,
    UnroutableError,
)
from infra.messaging.consumers import TOPOLOGY, command_binding, event_binding, idle_roles
from infra.messaging.in_process import InProcessBus
from infra.messaging.rabbitmq import RabbitBus
from infra.messaging.relay import OutboxRelay
from infra.runtime import Runtime
from infra.settings import Settings
from read_api.app import create_app, create_health_app
from tests.api_harness import api_client
from tests.fakes import ADDRESS, MOUSE, listed_mouse
from tests.unit.test_in_process_bus import Recorder, envelope, eventually, settle


class CountingBus(RabbitBus):
    """Counts the publishes the broker refused as unroutable."""

    unroutable = 0

    async def publish(self, exchange: str, envelopes: Sequence[Envelope]) -> None:
        try:
            await super().publish(exchange, envelopes)
        except UnroutableError:
            self.unroutable += 1
            raise


@pytest.fixture
async def bus(rabbitmq_url: str, rabbit_namespace: str) -> AsyncIterator[CountingBus]:
    rabbit = CountingBus(rabbitmq_url, namespace=rabbit_namespace, topology=TOPOLOGY, connect_timeout=5,
                         retry_delays=(0.05, 0.1), counts_fresh_for=0)
    await rabbit.start()
    yield rabbit
    await rabbit.close()


@pytest.fixture
def orders(postgres_settings: Settings) -> Iterator[Orders]:
    app = listed_mouse(Orders(application_env(postgres_settings, "Orders")))
    yield app
    app.close()


def subscription(binding: QueueBinding, handler: BatchHandler) -> Subscription:
    return Subscription(binding.queue, binding.exchange, binding.routing_keys, handler)


def place(orders: Orders) -> UUID:
    return orders.place_order(PlaceOrder(
        customer_id=uuid4(), items=[{"product_id": MOUSE, "quantity": 1}], shipping_address=ADDRESS,
    ))


async def test_a_declared_queue_holds_a_command_until_its_role_starts_and_declaring_again_changes_nothing(
    bus: CountingBus,
) -> None:
    assert await bus.declare_topology() == [binding.queue for binding in TOPOLOGY]
    assert await bus.declare_topology() == [binding.queue for binding in TOPOLOGY]
    charge = envelope("payments.ChargePayment")

    await bus.publish(COMMANDS_EXCHANGE, [charge])  # nobody runs payments yet: the queue holds it
    handler = Recorder()
    await bus.subscribe(subscription(command_binding("payments"), handler))
    await bus.declare_topology()  # a subscribed queue is declared the same way: the broker agrees

    await eventually(lambda: len(handler.done) == 1)
    await settle()
    assert [d.envelope for d in handler.deliveries] == [charge]
    assert bus.unroutable == 0


async def test_a_relay_with_nobody_to_take_its_messages_says_so_once_and_publishes_once_they_are_taken(
    bus: CountingBus, orders: Orders, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="infra.messaging.relay")
    placed = [place(orders), place(orders)]
    relay = OutboxRelay(orders, bus, backoff=0.01)
    stopping = asyncio.Event()
    running = asyncio.create_task(relay.run(stopping))
    try:
        await eventually(lambda: bus.unroutable >= 4)
        assert relay.waiting_for == ("saga",)
        assert relay.position == 0  # nothing counts as published

        handler = Recorder()
        await bus.subscribe(subscription(event_binding(), handler))  # the saga starts
        last = orders.recorder.max_notification_id()
        await eventually(lambda: relay.position == last)
        await eventually(lambda: len(handler.done) == 2)
        await settle()
    finally:
        stopping.set()
        await running

    # Each order's event delivered once: nothing lost while waiting, nothing doubled by the retries.
    assert sorted(str(d.envelope.correlation_id) for d in handler.deliveries) == sorted(map(str, placed))
    assert orders.process_recorder.max_tracking_id("relay:Orders") == last
    assert not relay.waiting_for
    said = [r for r in caplog.records if r.name == "infra.messaging.relay"]
    [warning] = [r for r in said if r.levelno == logging.WARNING]
    assert "orders.OrderPlaced" in warning.getMessage() and "`saga serve --role saga`" in warning.getMessage()
    assert all(r.exc_info is None for r in said) and not [r for r in said if r.levelno > logging.WARNING]
    assert ["publishes again" in r.getMessage() for r in said if r.levelno == logging.INFO] == [True]


async def test_the_consumer_counts_name_every_role_but_the_one_running(bus: CountingBus) -> None:
    await bus.subscribe(subscription(command_binding("payments"), Recorder()))

    counts = await bus.consumer_counts()

    assert counts == {"orders": 0, "orders_catalogue": 0, "payments": 1, "inventory": 0, "shipping": 0,
                      "notifications": 0, "order_fulfillment": 0}
    assert idle_roles(counts) == ["orders", "inventory", "shipping", "notifications", "saga"]
    assert await bus.healthy()  # a queue not found closed a channel of its own, not the bus's


async def test_the_consumer_counts_are_asked_of_the_broker_at_most_every_few_seconds(
    rabbitmq_url: str, rabbit_namespace: str
) -> None:
    rabbit = RabbitBus(rabbitmq_url, namespace=rabbit_namespace, topology=TOPOLOGY, connect_timeout=5)
    await rabbit.start()
    try:
        before = await rabbit.consumer_counts()
        await rabbit.subscribe(subscription(command_binding("payments"), Recorder()))
        assert await rabbit.consumer_counts() == before  # a probe a second is answered from the last count
    finally:
        await rabbit.close()
    assert before is not None and before["payments"] == 0


async def test_the_relay_and_the_api_are_ready_and_name_the_roles_nobody_runs(
    rabbitmq_url: str, rabbit_namespace: str, sqlite_settings: Settings
) -> None:
    rabbit = RabbitBus(rabbitmq_url, namespace=rabbit_namespace, topology=TOPOLOGY, connect_timeout=5)
    with bootstrap(sqlite_settings) as system:
        assembly = assemble(system.settings, ("relay", "payments"), system=system, bus=rabbit, seed=False)
        runtime = Runtime(assembly)
        async with runtime.lifespan():
            worker, api = create_health_app("relay", runtime.check), create_app(ready=runtime.check)
            async with api_client(worker) as client:
                ready = await client.get("/readyz")
                health = await client.get("/api/v1/health")
            async with api_client(api) as client:
                api_ready = await client.get("/readyz")

    nobody = ["orders", "inventory", "shipping", "notifications", "saga"]
    assert ready.status_code == health.status_code == api_ready.status_code == 200
    assert ready.json() == api_ready.json() == {"status": "ok", "waiting_for": nobody}
    assert health.json()["success"] is True and health.json()["data"]["waiting_for"] == nobody


async def test_on_the_in_process_bus_every_role_is_in_the_process_and_none_is_named(
    memory_settings: Settings,
) -> None:
    in_process: Bus = InProcessBus()
    with bootstrap(memory_settings) as system:
        runtime = Runtime(assemble(system.settings, ("relay",), system=system, bus=in_process, seed=False))
        async with runtime.lifespan():
            report = await runtime.check()
    assert report == {"status": "ok"}

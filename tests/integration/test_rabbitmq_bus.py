"""The bus contract on a real RabbitMQ, and what only a broker can show.

The contract is written once, in tests/unit/test_in_process_bus.py; `TestRabbitBus`
runs it with this module's `bus` and `send_raw`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from infra.bootstrap import make_bus
from infra.messaging.bus import EVENTS_EXCHANGE, Outcome
from infra.messaging.rabbitmq import RabbitBus
from infra.messaging.rabbitmq_queues import QueueType
from infra.settings import Settings
from tests.conftest import unavailable
from tests.unit.test_in_process_bus import (
    DELAYS,
    BusContract,
    RawSender,
    Recorder,
    envelope,
    eventually,
    payments,
    settle,
    wait_for_parked,
)


@pytest.fixture(params=["classic", "quorum"])
def queue_type(request: pytest.FixtureRequest) -> QueueType:
    kind: QueueType = request.param
    return kind


@pytest.fixture
async def bus(rabbitmq_url: str, rabbit_namespace: str, queue_type: QueueType) -> AsyncIterator[RabbitBus]:
    rabbit = RabbitBus(rabbitmq_url, namespace=rabbit_namespace, retry_delays=DELAYS, connect_timeout=5,
                       queue_type=queue_type)
    await rabbit.start()
    yield rabbit
    await rabbit.close()


@pytest.fixture
async def broker(rabbitmq_url: str) -> AsyncIterator[AbstractConnection]:
    """A plain aio-pika connection, to look at the broker from outside the bus."""
    connection = await aio_pika.connect(rabbitmq_url)
    yield connection
    await connection.close()


@pytest.fixture
def send_raw(broker: AbstractConnection, rabbit_namespace: str) -> RawSender:
    async def send(exchange: str, routing_key: str, body: bytes) -> None:
        async with broker.channel(on_return_raises=True) as channel:
            target = await channel.get_exchange(f"{rabbit_namespace}.{exchange}")
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await target.publish(message, routing_key, mandatory=True)

    return send


class TestRabbitBus(BusContract):
    """The contract on RabbitMQ."""


async def test_the_topology_has_the_designed_names_and_arguments(
    bus: RabbitBus, broker: AbstractConnection, rabbit_namespace: str, queue_type: QueueType
) -> None:
    await bus.subscribe(payments(Recorder()))
    ns = rabbit_namespace
    typed: dict[str, Any] = {} if queue_type == "classic" else {"x-queue-type": queue_type}
    moved_on = {} if queue_type == "classic" else {"x-dead-letter-strategy": "at-least-once",
                                                   "x-overflow": "reject-publish"}
    async with broker.channel() as channel:
        for exchange in ("saga.events", "saga.commands"):
            await channel.declare_exchange(f"{ns}.{exchange}", aio_pika.ExchangeType.TOPIC, durable=True)
        # Declaring with different arguments than the existing queue would close the channel.
        await channel.declare_queue(f"{ns}.payments", durable=True, arguments=typed)
        await channel.declare_queue(f"{ns}.payments.dead", durable=True, arguments=typed)
        for attempt, delay in enumerate(DELAYS, start=1):
            await channel.declare_queue(f"{ns}.payments.retry.{attempt}", durable=True, arguments={
                "x-message-ttl": round(delay * 1000), "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": f"{ns}.payments", **typed, **moved_on})
        assert not channel.is_closed


async def test_a_message_carries_its_envelope_in_amqp_properties(
    bus: RabbitBus, broker: AbstractConnection, rabbit_namespace: str
) -> None:
    async with broker.channel() as channel:
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(f"{rabbit_namespace}.{EVENTS_EXCHANGE}", "#")
        sent = envelope(amount="12.50")
        await bus.publish(EVENTS_EXCHANGE, [sent])
        message = await tap.get(timeout=5)
        await message.ack()
    assert (message.message_id, message.type, message.correlation_id, message.app_id) == (
        sent.message_id, "PaymentCharged", str(sent.correlation_id), "payments")
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"
    assert message.timestamp == sent.occurred_at.replace(microsecond=0)
    assert message.headers["causation_id"] == sent.causation_id
    assert message.headers["position"] == sent.position
    assert json.loads(message.body)["payload"] == {"amount": "12.50"}


async def test_handled_messages_are_acknowledged_at_the_broker(
    bus: RabbitBus, broker: AbstractConnection, rabbit_namespace: str
) -> None:
    handler = Recorder()
    await bus.subscribe(payments(handler))
    await bus.publish(EVENTS_EXCHANGE, [envelope() for _ in range(50)])
    await eventually(lambda: len(handler.done) == 50)
    await bus.close()  # unacknowledged messages would now be ready again
    async with broker.channel() as channel:
        queue = await channel.get_queue(f"{rabbit_namespace}.payments")
        assert queue.declaration_result.message_count == 0


async def test_the_broker_holds_back_what_exceeds_the_prefetch(
    bus: RabbitBus, broker: AbstractConnection, rabbit_namespace: str
) -> None:
    handler = Recorder(gate=asyncio.Event())
    await bus.subscribe(payments(handler, prefetch=5))
    for _ in range(24):  # one message each (a window's envelopes with one routing key travel together)
        await bus.publish(EVENTS_EXCHANGE, [envelope()])
    await eventually(lambda: len(handler.batches) == 1)
    await settle()
    async with broker.channel() as channel:
        queue = await channel.get_queue(f"{rabbit_namespace}.payments")
        assert queue.declaration_result.message_count == 24 - 5  # five are out with the consumer
    assert handler.gate is not None
    handler.gate.set()
    await eventually(lambda: len(handler.done) == 24)


async def test_a_window_sharing_a_routing_key_travels_as_one_message_and_settles_envelope_by_envelope(
    bus: RabbitBus, broker: AbstractConnection, rabbit_namespace: str
) -> None:
    window = [envelope() for _ in range(30)]
    poison = window[7]
    handler = Recorder(lambda d: Outcome.park("unknown product") if d.envelope == poison else Outcome.done())
    async with broker.channel() as channel:
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind(f"{rabbit_namespace}.{EVENTS_EXCHANGE}", "payments.*")
        await bus.subscribe(payments(handler, prefetch=10))
        await bus.publish(EVENTS_EXCHANGE, window)
        message = await tap.get(timeout=5)
        await message.ack()
        assert await tap.get(fail=False, timeout=1) is None  # the whole window was one message
    assert message.headers["x-envelopes"] == 30

    [letter] = await wait_for_parked(bus, "payments", 1)
    await eventually(lambda: len(handler.done) == 29)
    # Handled in slices no larger than the prefetch, each envelope once, the poison alone parked.
    assert max(len(batch) for batch in handler.batches) <= 10
    assert sorted(d.envelope.message_id for d in handler.done) == sorted(
        e.message_id for e in window if e != poison)
    assert (letter.envelope, letter.message_type) == (poison, "PaymentCharged")
    assert letter.error == "unknown product"
    async with broker.channel() as channel:
        dead = await channel.get_queue(f"{rabbit_namespace}.payments.dead")
        parked = await dead.get(timeout=5)
        await parked.reject(requeue=True)
    assert (parked.content_type, parked.message_id) == ("application/json", poison.message_id)
    assert parked.headers["x-original-routing-key"] == "payments.PaymentCharged"


async def test_a_window_is_published_only_once_the_broker_has_confirmed_every_message(
    bus: RabbitBus, broker: AbstractConnection, rabbit_namespace: str
) -> None:
    # A queue that refuses everything routed to it: the broker nacks those messages.
    window = [envelope("payments.PaymentCharged"), envelope("refusing.Anything"),
              envelope("shipping.Created")]
    async with broker.channel() as channel:
        refusing = await channel.declare_queue(
            exclusive=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
        await refusing.bind(f"{rabbit_namespace}.{EVENTS_EXCHANGE}", "refusing.*")
        tap = await channel.declare_queue(exclusive=True)
        for key in ("payments.*", "shipping.*"):
            await tap.bind(f"{rabbit_namespace}.{EVENTS_EXCHANGE}", key)
        with pytest.raises(aio_pika.exceptions.DeliveryError):
            await bus.publish(EVENTS_EXCHANGE, window)
        # The rest of the window was confirmed and arrived: a relay that publishes it again
        # sends those twice, which the consumers drop, and loses none.
        received = [await tap.get(timeout=5), await tap.get(timeout=5)]
        assert sorted(m.message_id for m in received if m.message_id) == sorted(
            [window[0].message_id, window[2].message_id])
        await bus.publish(EVENTS_EXCHANGE, [window[0], window[2]])  # the broker takes what it can route
        assert len([await tap.get(timeout=5), await tap.get(timeout=5)]) == 2


async def test_a_parked_message_keeps_where_it_came_from_in_its_headers(
    bus: RabbitBus, broker: AbstractConnection, rabbit_namespace: str
) -> None:
    await bus.subscribe(payments(Recorder(lambda _: Outcome.retry("database down"))))
    await bus.publish(EVENTS_EXCHANGE, [envelope()])
    await wait_for_parked(bus, "payments", 1)
    async with broker.channel() as channel:
        dead = await channel.get_queue(f"{rabbit_namespace}.payments.dead")
        message = await dead.get(timeout=5)
        await message.reject(requeue=True)
    headers = message.headers
    assert (headers["x-error"], headers["x-attempts"]) == ("database down", 3)
    assert headers["x-original-exchange"] == f"{rabbit_namespace}.saga.events"
    assert headers["x-original-routing-key"] == "payments.PaymentCharged"
    assert "x-parked-at" in headers
    assert len(await bus.dead_letters("payments")) == 1


async def test_another_process_lists_and_redrives_what_a_consumer_parked(
    bus: RabbitBus, rabbitmq_url: str, rabbit_namespace: str, queue_type: QueueType
) -> None:
    healed = False
    handler = Recorder(lambda _: Outcome.done() if healed else Outcome.park("unknown product"))
    await bus.subscribe(payments(handler))
    sent = envelope()
    await bus.publish(EVENTS_EXCHANGE, [sent])
    admin = RabbitBus(rabbitmq_url, namespace=rabbit_namespace, queues=["payments"], connect_timeout=5,
                      queue_type=queue_type)
    await admin.start()
    try:
        await wait_for_parked(admin, "payments", 1)
        [letter] = await admin.dead_letters()  # every queue it was told of
        assert (letter.error, letter.envelope) == ("unknown product", sent)
        healed = True
        assert await admin.redrive(letter.id) is True
    finally:
        await admin.close()
    await eventually(lambda: len(handler.done) == 1)
    assert handler.attempts_of(sent) == [1, 1]


async def test_consumers_are_resubscribed_and_publishing_resumes_after_the_connection_drops(
    bus: RabbitBus, rabbitmq_vhost: str | None
) -> None:
    if rabbitmq_vhost is None:
        unavailable("rabbitmqctl", "dropping the bus's connections needs a vhost of this run's own")
    handler = Recorder()
    await bus.subscribe(payments(handler))
    await bus.publish(EVENTS_EXCHANGE, [envelope()])
    await eventually(lambda: len(handler.done) == 1)
    command = ["rabbitmqctl", "close_all_connections", "-p", rabbitmq_vhost, "test: connection lost"]
    closed = await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True, text=True)
    assert "Closed 0 connections" not in closed.stdout
    after = envelope()
    await bus.publish(EVENTS_EXCHANGE, [after])  # waits for the channel to be restored
    await eventually(lambda: len(handler.done) == 2)
    assert handler.done[-1].envelope == after
    assert await bus.healthy() is True
    await settle()


async def test_the_system_declares_quorum_queues_when_asked(
    rabbitmq_url: str, rabbit_namespace: str, broker: AbstractConnection
) -> None:
    settings = Settings(_env_file=None, amqp_url=rabbitmq_url, bus_namespace=rabbit_namespace,
                        queue_type="quorum")
    bus = make_bus(settings)
    assert isinstance(bus, RabbitBus)
    await bus.start()
    try:
        declared = await bus.declare_topology()
    finally:
        await bus.close()
    assert "payments" in declared
    async with broker.channel() as channel:
        for queue in declared:
            for name in (queue, f"{queue}.dead"):
                # Declared again as a quorum queue: were it classic, the broker would close the channel.
                await channel.declare_queue(f"{rabbit_namespace}.{name}", durable=True,
                                            arguments={"x-queue-type": "quorum"})
        assert not channel.is_closed

"""Parked messages on RabbitMQ are listed from their record, never taken off `<queue>.dead` to be listed.

Another bus here stands for another process: a connection of its own, as the CLI's
or the projector's would be.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from infra.messaging.bus import EVENTS_EXCHANGE, Delivery, Outcome, QueueBinding
from infra.messaging.rabbitmq import RabbitBus
from infra.messaging.rabbitmq_messages import envelope_message
from infra.messaging.rabbitmq_queues import QueueType, queue_arguments
from tests.unit.test_in_process_bus import DELAYS, Recorder, envelope, eventually, payments, wait_for_parked

PAYMENTS = QueueBinding("payments", EVENTS_EXCHANGE, ("payments.*",))


@pytest.fixture(params=["classic", "quorum"])
def queue_type(request: pytest.FixtureRequest) -> QueueType:
    kind: QueueType = request.param
    return kind


@pytest.fixture
async def buses(
    rabbitmq_url: str, rabbit_namespace: str, queue_type: QueueType
) -> AsyncIterator[list[RabbitBus]]:
    """Three started buses of one namespace, each on a connection of its own."""
    started = [RabbitBus(rabbitmq_url, namespace=rabbit_namespace, retry_delays=DELAYS, connect_timeout=5,
                         topology=[PAYMENTS], queue_type=queue_type) for _ in range(3)]
    for bus in started:
        await bus.start()
    yield started
    for bus in started:
        await bus.close()


@pytest.fixture
async def broker(rabbitmq_url: str) -> AsyncIterator[AbstractConnection]:
    connection = await aio_pika.connect(rabbitmq_url)
    yield connection
    await connection.close()


async def dead_count(broker: AbstractConnection, rabbit_namespace: str) -> int:
    async with broker.channel() as channel:
        dead = await channel.get_queue(f"{rabbit_namespace}.payments.dead")
        return dead.declaration_result.message_count or 0


async def list_for_ever(bus: RabbitBus, listed: list[int]) -> None:
    while True:
        listed.append(len(await bus.dead_letters()))


async def test_a_letter_is_redriven_from_another_process_while_listings_run_and_nothing_else_moves(
    buses: list[RabbitBus], broker: AbstractConnection, rabbit_namespace: str
) -> None:
    consumer, admin, lister = buses
    healed: set[str] = set()

    def decide(delivery: Delivery) -> Outcome:
        return Outcome.done() if delivery.envelope.message_id in healed else Outcome.park("unknown product")

    handler = Recorder(decide)
    await consumer.subscribe(payments(handler))
    sent = [envelope() for _ in range(200)]
    await consumer.publish(EVENTS_EXCHANGE, sent)
    letters = await wait_for_parked(admin, "payments", 200)
    listed: list[int] = []
    listings = [asyncio.create_task(list_for_ever(bus, listed)) for bus in (lister, consumer)]
    try:
        await eventually(lambda: len(listed) >= 2)
        redriven = letters[:5]
        for letter in redriven:
            assert letter.envelope is not None
            healed.add(letter.envelope.message_id)
            assert await admin.redrive(letter.id) is True  # while the others keep listing
        await eventually(lambda: len(handler.done) == 5)
    finally:
        for listing in listings:
            listing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listing
    assert sorted(d.envelope.message_id for d in handler.done) == sorted(healed)  # each once
    left = {letter.id for letter in letters[5:]}
    for bus in buses:
        assert {letter.id for letter in await bus.dead_letters("payments")} == left
    assert await dead_count(broker, rabbit_namespace) == 195


async def publish_parked(broker: AbstractConnection, name: str, message: aio_pika.Message) -> None:
    async with broker.channel() as channel:
        await channel.default_exchange.publish(message, name)


async def test_letters_parked_before_their_record_existed_are_listed_after_the_topology_is_declared(
    buses: list[RabbitBus], broker: AbstractConnection, rabbit_namespace: str, queue_type: QueueType
) -> None:
    dead = f"{rabbit_namespace}.payments.dead"
    async with broker.channel() as channel:
        await channel.declare_queue(dead, durable=True, arguments=queue_arguments(queue_type))
    old = envelope()  # as the consumer parked before it recorded parkings: to `.dead` alone
    await publish_parked(broker, dead, envelope_message(old, {
        "x-error": "unknown product", "x-attempts": 3, "x-dead-letter-id": "payments:parked-long-ago",
        "x-parked-at": datetime(2024, 5, 1, tzinfo=UTC).isoformat()}))
    by_hand = envelope()
    await publish_parked(broker, dead, envelope_message(by_hand, {}))
    admin, consumer, _ = buses
    assert await admin.dead_letters() == []  # no record of them yet
    await consumer.declare_topology()
    await consumer.declare_topology()  # recorded once, however often declared
    listed = await admin.dead_letters("payments")
    assert [(letter.id, letter.envelope, letter.error, letter.attempts) for letter in listed] == [
        ("payments:parked-long-ago", old, "unknown product", 3),
        (f"payments:{by_hand.message_id}", by_hand, "parked without an error", 1)]
    assert listed[0].parked_at == datetime(2024, 5, 1, tzinfo=UTC)
    assert await admin.dead_letters("payments") == listed  # the time of the one parked by hand is kept
    handler = Recorder()
    await consumer.subscribe(payments(handler))
    assert await admin.redrive("payments:parked-long-ago") is True
    await eventually(lambda: [d.envelope for d in handler.done] == [old])
    assert [letter.envelope for letter in await admin.dead_letters()] == [by_hand]
    assert await dead_count(broker, rabbit_namespace) == 1


async def test_a_letter_gone_from_its_queue_is_listed_until_a_redrive_finds_it_gone(
    buses: list[RabbitBus], broker: AbstractConnection, rabbit_namespace: str
) -> None:
    consumer, admin, _ = buses
    await consumer.subscribe(payments(Recorder(lambda _: Outcome.park("unknown product"))))
    await consumer.publish(EVENTS_EXCHANGE, [envelope(), envelope(routing_key="payments.PaymentRefunded")])
    first, second = await wait_for_parked(admin, "payments", 2)
    async with broker.channel() as channel:  # as a redrive that stopped before recording the removal
        taken = await (await channel.get_queue(f"{rabbit_namespace}.payments.dead")).get(timeout=5)
        await taken.ack()
    [gone] = [letter for letter in (first, second)
              if letter.envelope is not None and letter.envelope.message_id == taken.message_id]
    assert len(await admin.dead_letters()) == 2
    assert await admin.redrive(gone.id) is False
    assert [letter.id for letter in await admin.dead_letters()] == [
        letter.id for letter in (first, second) if letter is not gone]

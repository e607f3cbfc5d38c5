"""On RabbitMQ a redrive finds its letter while other processes list the parked messages.

Another bus here stands for another process: a connection of its own, as the CLI's
or the projector's would be.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from infra.messaging.bus import EVENTS_EXCHANGE, Delivery, Outcome, QueueBinding
from infra.messaging.rabbitmq import RabbitBus
from infra.messaging.rabbitmq_parking import PARKING_LOCK, ParkingLock, holding_the_parking_queues
from infra.messaging.rabbitmq_queues import QueueType
from projections.waiting import cancel_until_done
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


async def dead_count(url: str, rabbit_namespace: str) -> int:
    async with await aio_pika.connect(url) as connection, connection.channel() as channel:
        dead = await channel.get_queue(f"{rabbit_namespace}.payments.dead")
        return dead.declaration_result.message_count or 0


async def list_for_ever(bus: RabbitBus, listed: list[int]) -> None:
    while True:
        listed.append(len(await bus.dead_letters()))


async def test_a_letter_is_redriven_from_another_process_while_listings_run_and_nothing_else_moves(
    buses: list[RabbitBus], rabbitmq_url: str, rabbit_namespace: str
) -> None:
    consumer, admin, lister = buses
    healed: set[str] = set()

    def decide(delivery: Delivery) -> Outcome:
        return Outcome.done() if delivery.envelope.message_id in healed else Outcome.park("unknown product")

    handler = Recorder(decide)
    await consumer.subscribe(payments(handler))
    await consumer.publish(EVENTS_EXCHANGE, [envelope() for _ in range(200)])
    letters = await wait_for_parked(admin, "payments", 200)
    listed: list[int] = []
    listings = [asyncio.create_task(list_for_ever(bus, listed)) for bus in (lister, consumer)]
    try:
        async with asyncio.timeout(120):
            await eventually(lambda: len(listed) >= 2)
            for letter in letters[:5]:
                assert letter.envelope is not None
                healed.add(letter.envelope.message_id)
                assert await admin.redrive(letter.id) is True  # while the others keep listing
            await eventually(lambda: len(handler.done) == 5)
    finally:
        ended = await cancel_until_done(listings)
    assert all(isinstance(end, asyncio.CancelledError) for end in ended), ended
    assert set(listed) <= {200, 199, 198, 197, 196, 195}  # every listing saw every letter still parked
    assert sorted(d.envelope.message_id for d in handler.done) == sorted(healed)  # each once
    left = {letter.id for letter in letters[5:]}
    for bus in buses:
        assert {letter.id for letter in await bus.dead_letters("payments")} == left
    # A reader returns its letters with a nack the broker applies after the reader is done (a quorum
    # queue through its log): the count reaches 195, every letter back in its place, none twice.
    counts = [await dead_count(rabbitmq_url, rabbit_namespace)]
    async with asyncio.timeout(10):
        while counts[-1] < 195:
            await asyncio.sleep(0.05)
            counts.append(await dead_count(rabbitmq_url, rabbit_namespace))
    assert counts[-1] == 195 and max(counts) == 195, counts


async def test_a_process_that_dies_while_it_reads_the_parking_queues_holds_nothing(
    buses: list[RabbitBus], rabbitmq_url: str, rabbit_namespace: str
) -> None:
    consumer, admin, _ = buses
    await consumer.subscribe(payments(Recorder(lambda _: Outcome.park("unknown product"))))
    await consumer.publish(EVENTS_EXCHANGE, [envelope()])
    await wait_for_parked(admin, "payments", 1)
    lock = f"{rabbit_namespace}.{PARKING_LOCK}"
    dying: AbstractConnection = await aio_pika.connect(rabbitmq_url)
    holding = holding_the_parking_queues(dying, lock, within=5)
    await holding.__aenter__()  # and never leaves: its connection is cut, as by kill -9

    async with await aio_pika.connect(rabbitmq_url) as other:
        with pytest.raises(TimeoutError):  # while it lives, nobody else reads
            async with holding_the_parking_queues(other, lock, within=0.5):
                pass
    await dying.close()

    async with asyncio.timeout(10):
        assert len(await admin.dead_letters("payments")) == 1


async def test_a_process_that_reads_again_and_again_lets_a_waiting_one_in_between_its_turns(
    rabbitmq_url: str, rabbit_namespace: str
) -> None:
    lock = f"{rabbit_namespace}.{PARKING_LOCK}"
    busy, waiting = ParkingLock(lock, within=5), ParkingLock(lock, within=5)
    turns: list[str] = []
    async with await aio_pika.connect(rabbitmq_url) as one, await aio_pika.connect(rabbitmq_url) as other:

        async def read_again_and_again() -> None:  # as a listing loop does, with no pause of its own
            while True:
                async with busy.holding(one):
                    turns.append("busy")
                    await asyncio.sleep(0.1)

        reading = asyncio.create_task(read_again_and_again())
        try:
            await eventually(lambda: bool(turns))
            for _ in range(3):
                async with waiting.holding(other):
                    turns.append("waiting")
        finally:
            await cancel_until_done([reading])
    # Each takes its turn: taken back at once, the lock stays with whoever let it go, as a try of the
    # other's comes only every few milliseconds; handed over, it goes to the other at the next release
    # (or the one after, on a host slow enough to make a try outlast the hand-over's wait).
    third = [i for i, turn in enumerate(turns) if turn == "waiting"][2]
    runs = "".join("b" if turn == "busy" else "w" for turn in turns[:third + 1]).split("w")[:-1]
    assert all(1 <= len(run) <= 2 for run in runs), turns

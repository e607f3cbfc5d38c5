"""The in-process bus on a SQLite file: the contract, and what it keeps across a restart.

The embedded default runs every role in one process on this bus, and the relay
forgets a message once it is published; so whatever is queued, out with a
consumer, waiting for its retry or parked must survive the process, and the
CLI, another process, must see and re-drive what was parked.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from infra.bootstrap import make_bus
from infra.messaging.bus import EVENTS_EXCHANGE, Delivery, Outcome, UnroutableError
from infra.messaging.in_process import InProcessBus
from infra.settings import Settings
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

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "bus.sqlite"


@pytest.fixture
async def bus(path: Path) -> AsyncIterator[InProcessBus]:
    durable = InProcessBus(path, retry_delays=DELAYS)
    await durable.start()
    yield durable
    await durable.close()


@pytest.fixture
def send_raw(bus: InProcessBus) -> RawSender:
    return bus.publish_raw


class TestDurableInProcessBus(BusContract):
    """The contract on the in-process bus with its queues in a file."""


async def opened(path: Path, delays: Sequence[float] = DELAYS) -> InProcessBus:
    durable = InProcessBus(path, retry_delays=delays)
    await durable.start()
    return durable


async def test_messages_queued_when_the_bus_closes_are_delivered_once_after_a_restart(path: Path) -> None:
    before = await opened(path)
    stuck = Recorder(gate=asyncio.Event())  # holds the first message and leaves the rest waiting
    await before.subscribe(payments(stuck, prefetch=1))
    sent = [envelope() for _ in range(3)]
    await before.publish(EVENTS_EXCHANGE, sent)
    await eventually(lambda: len(stuck.batches) == 1)
    await before.close()

    after = await opened(path)
    handler = Recorder()
    await after.subscribe(payments(handler))
    await eventually(lambda: len(handler.done) == 3)
    await settle()
    await after.close()
    assert handler.deliveries == [Delivery(e, attempt=1) for e in sent]
    assert stuck.done == []


async def test_a_batch_out_with_a_killed_process_is_delivered_again_after_a_restart(path: Path) -> None:
    consumer = await asyncio.to_thread(
        subprocess.Popen, [sys.executable, "-c", HOLDING_CONSUMER, str(path)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert await asyncio.wait_for(asyncio.to_thread(_line_of, consumer), 30) == "ready"
        publisher = await opened(path)
        sent = [envelope() for _ in range(3)]
        await publisher.publish(EVENTS_EXCHANGE, sent)
        taken = await asyncio.wait_for(asyncio.to_thread(_line_of, consumer), 10)
        assert taken == "taken " + " ".join(e.message_id for e in sent)
    finally:
        consumer.kill()
        await asyncio.to_thread(consumer.wait)

    handler = Recorder()
    await publisher.subscribe(payments(handler))
    await eventually(lambda: len(handler.done) == 3)
    await settle()
    await publisher.close()
    assert handler.deliveries == [Delivery(e, attempt=1) for e in sent]


HOLDING_CONSUMER = """
import asyncio, sys
from pathlib import Path
from infra.messaging.bus import EVENTS_EXCHANGE, Subscription
from infra.messaging.in_process import InProcessBus

async def hold(deliveries):
    print("taken", *(d.envelope.message_id for d in deliveries), flush=True)
    await asyncio.Event().wait()

async def main():
    bus = InProcessBus(Path(sys.argv[1]))
    await bus.start()
    await bus.subscribe(Subscription("payments", EVENTS_EXCHANGE, ("payments.*",), hold))
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _line_of(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


async def test_a_message_waiting_for_its_retry_survives_a_restart_and_still_waits_its_delay(
    path: Path,
) -> None:
    before = await opened(path, delays=(0.5,))
    failing = Recorder(lambda _: Outcome.retry("database down"))
    await before.subscribe(payments(failing))
    sent = envelope()
    await before.publish(EVENTS_EXCHANGE, [sent])
    await eventually(lambda: len(failing.deliveries) == 1)
    failed_at = time.monotonic()
    await before.close()

    after = await opened(path, delays=(0.5,))
    arrivals: list[float] = []

    def arrive(_: Delivery) -> Outcome:
        arrivals.append(time.monotonic())
        return Outcome.done()

    handler = Recorder(arrive)
    await after.subscribe(payments(handler))
    await eventually(lambda: len(handler.done) == 1)
    await settle()
    await after.close()
    assert failing.attempts_of(sent) == [1]
    assert handler.attempts_of(sent) == [2]
    assert arrivals[0] - failed_at >= 0.4


async def test_a_second_bus_on_the_same_file_lists_and_redrives_what_the_first_parked(path: Path) -> None:
    healed = False
    server = await opened(path)
    handler = Recorder(lambda _: Outcome.done() if healed else Outcome.park("unknown product"))
    await server.subscribe(payments(handler))
    sent = envelope()
    await server.publish(EVENTS_EXCHANGE, [sent])
    admin = await opened(path)
    try:
        [letter] = await wait_for_parked(admin, "payments", 1)
        assert (letter.queue, letter.message_type, letter.error, letter.envelope) == (
            "payments", "PaymentCharged", "unknown product", sent)
        assert await admin.dead_letters() == await server.dead_letters() == [letter]
        healed = True
        assert await admin.redrive(letter.id) is True
    finally:
        await admin.close()
    await eventually(lambda: len(handler.done) == 1)
    assert handler.attempts_of(sent) == [1, 1]
    assert await server.dead_letters() == []
    await server.close()


async def test_a_queue_declared_earlier_keeps_receiving_while_no_consumer_is_subscribed(path: Path) -> None:
    earlier = await opened(path)
    await earlier.subscribe(payments(Recorder()))
    await earlier.close()

    relay = await opened(path)
    sent = envelope()
    await relay.publish(EVENTS_EXCHANGE, [sent])  # not unroutable: the queue is still bound
    with pytest.raises(UnroutableError):
        await relay.publish(EVENTS_EXCHANGE, [envelope("shipping.ShipmentCreated")])
    await relay.close()

    later = await opened(path)
    handler = Recorder()
    await later.subscribe(payments(handler))
    await eventually(lambda: len(handler.done) == 1)
    await settle()
    await later.close()
    assert handler.deliveries == [Delivery(sent)]


async def test_a_publish_with_an_unroutable_message_puts_none_of_its_messages_on_a_queue(
    bus: InProcessBus,
) -> None:
    handler = Recorder()
    await bus.subscribe(payments(handler))
    with pytest.raises(UnroutableError) as raised:
        await bus.publish(EVENTS_EXCHANGE, [envelope(), envelope("shipping.ShipmentCreated")])
    assert raised.value.routing_keys == ("shipping.ShipmentCreated",)
    after = envelope()
    await bus.publish(EVENTS_EXCHANGE, [after])
    await eventually(lambda: len(handler.done) == 1)
    await settle()
    assert handler.deliveries == [Delivery(after)]


async def test_the_embedded_bus_keeps_its_queues_in_the_data_dir(sqlite_settings: Settings) -> None:
    server, cli = make_bus(sqlite_settings), make_bus(sqlite_settings)
    await server.start()
    await server.subscribe(payments(Recorder(lambda _: Outcome.park("unknown product"))))
    await server.publish(EVENTS_EXCHANGE, [envelope()])
    await wait_for_parked(server, "payments", 1)
    await cli.start()
    parked = await cli.dead_letters()
    await cli.close()
    await server.close()
    assert [letter.error for letter in parked] == ["unknown product"]
    assert (sqlite_settings.data_dir / "bus.sqlite").is_file()


async def test_with_an_in_memory_database_the_bus_keeps_nothing_on_disk(
    memory_settings: Settings, tmp_path: Path
) -> None:
    settings = memory_settings.model_copy(update={"data_dir": tmp_path / "data"})
    first, second = make_bus(settings), make_bus(settings)
    await first.start()
    await second.start()
    await first.subscribe(payments(Recorder(lambda _: Outcome.park("unknown product"))))
    await first.publish(EVENTS_EXCHANGE, [envelope()])
    await wait_for_parked(first, "payments", 1)
    assert await second.dead_letters() == []
    await first.close()
    await second.close()
    assert not settings.data_dir.exists()

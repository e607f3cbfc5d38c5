"""A real broker restart: the old system's consumers were never re-subscribed after one.

It stops and starts the local RabbitMQ application (`rabbitmqctl stop_app` / `start_app`,
which needs the rights to manage the node), so it runs only against a local broker.
Every connection to that broker drops for a few seconds, other test runs' included.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator

import pytest

from infra.messaging.bus import EVENTS_EXCHANGE, Delivery, Outcome
from infra.messaging.rabbitmq import RabbitBus
from tests.conftest import unavailable
from tests.unit.test_in_process_bus import DELAYS, Recorder, envelope, eventually, payments, wait_for_parked


async def rabbitmqctl(*args: str) -> None:
    command = ["rabbitmqctl", *args]
    await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True, timeout=60)


async def until_healthy(bus: RabbitBus, expected: bool, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while await bus.healthy() is not expected:
        assert asyncio.get_running_loop().time() < deadline, f"healthy() is not {expected} after {within} s"
        await asyncio.sleep(0.05)


@pytest.fixture
async def bus(
    rabbitmq_url: str, rabbitmq_vhost: str | None, rabbit_namespace: str
) -> AsyncIterator[RabbitBus]:
    if rabbitmq_vhost is None or shutil.which("rabbitmqctl") is None:
        unavailable("rabbitmqctl", "restarting the broker needs rabbitmqctl on the broker's own host")
    rabbit = RabbitBus(rabbitmq_url, namespace=rabbit_namespace, retry_delays=DELAYS, connect_timeout=20)
    await rabbit.start()
    yield rabbit
    await rabbit.close()


async def test_after_a_broker_restart_consumers_resume_and_parked_messages_remain(bus: RabbitBus) -> None:
    def decide(delivery: Delivery) -> Outcome:
        return Outcome.park("poison") if delivery.envelope.payload.get("poison") else Outcome.done()

    handler = Recorder(decide)
    await bus.subscribe(payments(handler))
    poison = envelope(poison=True)
    await bus.publish(EVENTS_EXCHANGE, [envelope(), poison])
    await wait_for_parked(bus, "payments", 1)
    try:
        await rabbitmqctl("stop_app")
        await until_healthy(bus, False, within=10)
    finally:
        await rabbitmqctl("start_app")
    await until_healthy(bus, True, within=30)
    after = envelope()
    await bus.publish(EVENTS_EXCHANGE, [after])
    await eventually(lambda: len(handler.done) == 2)
    assert handler.done[-1].envelope == after
    [letter] = await bus.dead_letters("payments")
    assert (letter.envelope, letter.error) == (poison, "poison")

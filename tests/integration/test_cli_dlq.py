"""`saga dlq list|redrive` on both transports, while the server that parked the message runs.

The CLI is another process in production; here it runs through typer's runner in a
thread of its own, with its own event loop and its own bus on DATA_DIR, as it would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from typer.testing import CliRunner, Result

from infra.bootstrap import make_bus
from infra.cli.main import app
from infra.messaging.bus import EVENTS_EXCHANGE, Bus, Outcome
from infra.settings import Settings
from tests.unit.test_in_process_bus import Recorder, envelope, eventually, payments, wait_for_parked

runner = CliRunner()


@pytest.fixture(params=["embedded", "rabbitmq"])
def settings(
    request: pytest.FixtureRequest, sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The embedded default, or RabbitMQ; and the same in the environment the CLI reads."""
    for name in ("DATABASE_URL", "AMQP_URL", "RABBITMQ_URL", "RABBITMQ_HOST", "DB_HOST", "BUS_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(sqlite_settings.data_dir))
    if request.param == "embedded":
        return sqlite_settings
    url: str = request.getfixturevalue("rabbitmq_url")
    namespace: str = request.getfixturevalue("rabbit_namespace")
    monkeypatch.setenv("AMQP_URL", url)
    monkeypatch.setenv("BUS_NAMESPACE", namespace)
    return sqlite_settings.model_copy(update={"amqp_url": url, "bus_namespace": namespace})


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Bus]:
    """The bus as `saga serve` makes it."""
    bus = make_bus(settings)
    await bus.start()
    yield bus
    await bus.close()


async def saga(*args: str) -> Result:
    return await asyncio.to_thread(lambda: runner.invoke(app, list(args)))


async def test_dlq_list_shows_what_the_server_parked_and_redrive_hands_it_back(server: Bus) -> None:
    healed = False
    handler = Recorder(lambda _: Outcome.done() if healed else Outcome.park("unknown product"))
    await server.subscribe(payments(handler))
    sent = envelope()
    await server.publish(EVENTS_EXCHANGE, [sent])
    [letter] = await wait_for_parked(server, "payments", 1)

    listed = await saga("dlq", "list")
    assert listed.exit_code == 0, listed.output
    assert letter.id in listed.output  # whole, so it can be copied into `dlq redrive`
    for shown in ("PaymentCharged on payments", "1 attempt(s)", "unknown product", "1 parked message(s)"):
        assert shown in listed.output
    assert "0 parked message(s)" in (await saga("dlq", "list", "shipping")).output

    healed = True
    redriven = await saga("dlq", "redrive", letter.id)
    assert redriven.exit_code == 0, redriven.output
    assert f"re-driven {letter.id}" in redriven.output
    await eventually(lambda: len(handler.done) == 1)
    assert handler.attempts_of(sent) == [1, 1]
    assert "0 parked message(s)" in (await saga("dlq", "list")).output


async def test_dlq_redrive_of_an_unknown_id_exits_4_naming_it(server: Bus) -> None:
    await server.subscribe(payments(Recorder()))
    result = await saga("dlq", "redrive", "payments:0123456789abcdef")
    assert result.exit_code == 4
    assert "no parked message payments:0123456789abcdef" in result.stderr

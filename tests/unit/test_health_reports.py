"""Health and readiness name the part that is down; the driver's reason goes to the log, once per outage."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
import pytest

from infra.bootstrap import System, assemble, bootstrap
from infra.messaging.in_process import InProcessBus
from infra.runtime import Runtime
from infra.settings import Settings
from read_api.app import create_health_app
from tests.api_harness import api_client

DRIVER_SAYS = 'connection to server at "10.1.2.3", port 5432 failed: FATAL: password authentication failed'


@pytest.fixture
def system() -> Iterator[System]:
    with bootstrap(Settings(_env_file=None, database_url="memory://")) as built:
        built.orders  # noqa: B018 - a process checks the stores it has opened
        built.payments  # noqa: B018
        yield built


def failing(system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> int:
        raise psycopg.OperationalError(DRIVER_SAYS + "\nfor user \"shop\"")

    monkeypatch.setattr(system.payments.recorder, "max_notification_id", refuse)


def test_a_store_that_does_not_answer_is_named_and_its_reason_logged_once_as_one_line(
    system: System, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    assert system.check() == {"status": "ok"}
    failing(system, monkeypatch)

    reports = [system.check() for _ in range(3)]
    monkeypatch.undo()
    recovered = system.check()

    assert reports == [{"status": "unavailable", "down": ["event store: Payments"]}] * 3
    assert recovered == {"status": "ok"}
    down, up = [r for r in caplog.records if r.name == "read_api.health"]
    assert down.levelno == logging.WARNING and down.exc_info is None
    assert "event store: Payments" in down.getMessage() and DRIVER_SAYS in down.getMessage()
    assert "\n" not in down.getMessage()
    assert up.levelno == logging.INFO and "answers again" in up.getMessage()


async def test_health_names_every_part_down_and_none_of_the_drivers_words(
    system: System, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    failing(system, monkeypatch)
    # A bus never started: its broker does not answer.
    runtime = Runtime(assemble(system.settings, (), system=system, bus=InProcessBus(), seed=False))
    app = create_health_app("payments", runtime.check)

    async with api_client(app) as client:
        ready = await client.get("/readyz")
        health = await client.get("/api/v1/health")

    assert ready.status_code == health.status_code == 503
    assert ready.json() == {"status": "unavailable", "down": ["broker", "event store: Payments"]}
    assert health.json()["error"] == {"code": "UNHEALTHY", "message": "down: broker, event store: Payments",
                                      "details": None}
    assert health.json()["data"]["down"] == ["broker", "event store: Payments"]
    for answer in (ready.text, health.text):
        assert "10.1.2.3" not in answer and "FATAL" not in answer and "OperationalError" not in answer
    said = [r.getMessage() for r in caplog.records if r.name == "read_api.health"]
    assert [line.split(" is down")[0] for line in said] == ["broker", "event store: Payments"]  # once each

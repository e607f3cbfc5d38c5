"""A database that stops answering: readiness names its stores, and only the log says why."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from infra.bootstrap import System, bootstrap
from infra.eventstore.probes import PROBE_SECONDS
from infra.settings import PostgresDsn, Settings
from read_api.app import create_health_app
from tests.api_harness import api_client


@pytest.fixture
def database(postgres_server: PostgresDsn) -> Iterator[PostgresDsn]:
    """A database of this test's own, since the test shuts every client out of it."""
    name = f"saga_down_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield PostgresDsn(postgres_server.host, postgres_server.port, name, postgres_server.user,
                      postgres_server.password)
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def shut_out(server: PostgresDsn, name: str, *, allowed: bool) -> None:
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
            sql.Identifier(name), sql.Literal(allowed)))
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])


async def test_a_database_that_is_down_is_named_in_the_report_without_the_drivers_message(
    postgres_server: PostgresDsn, database: PostgresDsn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="read_api.health")
    settings = Settings(_env_file=None, database_url=database.url, postgres_pool_size=1)
    with bootstrap(settings) as system:
        stores = [f"event store: {app.name}" for app in system.applications]  # one database holds them all
        assert system.check() == {"status": "ok"}
        app = create_health_app("payments", lambda: asyncio.to_thread(system.check))

        shut_out(postgres_server, database.dbname, allowed=False)
        try:
            async with api_client(app) as client:
                started = time.perf_counter()
                answers = [await client.get("/readyz") for _ in range(3)]
                took = time.perf_counter() - started
        finally:
            shut_out(postgres_server, database.dbname, allowed=True)
        recovered = await _recovered(system)

    assert took < 3 * (PROBE_SECONDS + 2)  # each probe answers within seconds, not the pool's half minute
    for answer in answers:
        assert answer.status_code == 503
        assert answer.json()["status"] == "unavailable"
        assert sorted(answer.json()["down"]) == sorted(stores)
        assert database.dbname not in answer.text and "accepting connections" not in answer.text
    said = [r for r in caplog.records if r.name == "read_api.health"]
    down = [r.getMessage() for r in said if r.levelno == logging.WARNING]
    assert len(down) == len(stores)  # one line per store down, not one per probe
    assert all(r.exc_info is None for r in said)
    assert recovered


async def _recovered(system: System) -> bool:
    """Whether the stores answer again once the database lets clients back in (its pool reconnects)."""
    for _ in range(60):
        if await asyncio.to_thread(system.check) == {"status": "ok"}:
            return True
        await asyncio.sleep(1)
    return False

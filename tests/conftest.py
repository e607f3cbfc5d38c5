"""Fixtures shared by every test folder.

Tests that need PostgreSQL or RabbitMQ find them at DATABASE_URL / AMQP_URL
(defaults: the local servers). When a server is unreachable those tests are
skipped with the reason, unless REQUIRE_SERVICES=1, when they fail instead.
So do the tests that need a RabbitMQ vhost of the run's own (made with rabbitmqctl,
on the broker's host) to drop its connections or restart it; the others share the
URL's vhost, each under a namespace of its own, when no vhost can be made.
Each run works in its own database, and each test in its own schema.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import psycopg
import pytest
from psycopg import sql

from commands.orders import Orders
from infra.eventstore.persistence import application_env
from infra.eventstore.recorders import PostgresExactlyOnceRecorder
from infra.messaging.bus import Bus
from infra.messaging.in_process import InProcessBus
from infra.messaging.rabbitmq import RabbitBus
from infra.settings import PostgresDsn, Settings

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "").lower() in ("1", "y", "yes", "true")


def unavailable(service: str, reason: object) -> NoReturn:
    message = f"{service} is not reachable: {reason}"
    if services_required():
        pytest.fail(f"{message} (REQUIRE_SERVICES=1)")
    pytest.skip(message)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, folder))


@pytest.fixture(scope="session")
def postgres_server() -> PostgresDsn:
    dsn = PostgresDsn.parse(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    try:
        with psycopg.connect(dsn.url, connect_timeout=3):
            pass
    except psycopg.OperationalError as error:
        unavailable("PostgreSQL", error)
    return dsn


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresDsn) -> Iterator[PostgresDsn]:
    """A database of this test run's own, dropped at the end."""
    name = f"saga_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield PostgresDsn(
        postgres_server.host, postgres_server.port, name,
        postgres_server.user, postgres_server.password,
    )
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def new_database(postgres_server: PostgresDsn) -> Iterator[str]:
    """A name no database has yet (one that needs quoting), dropped at the end if a test created it."""
    name = f"saga-new-{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(postgres_server.url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def postgres_settings(postgres_database: PostgresDsn) -> Settings:
    """Settings pointing at a fresh schema of the run's database."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return Settings(
        _env_file=None,
        database_url=f"{postgres_database.url}?schema={schema}",
        postgres_pool_size=2,
    )


@pytest.fixture
def orders_recorder(postgres_settings: Settings) -> Iterator[PostgresExactlyOnceRecorder]:
    """The Orders application's recorder on a fresh schema of PostgreSQL."""
    orders = Orders(application_env(postgres_settings, "Orders"))
    try:
        assert isinstance(orders.process_recorder, PostgresExactlyOnceRecorder)
        yield orders.process_recorder
    finally:
        orders.close()


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_url=None, data_dir=tmp_path / "data")


@pytest.fixture
def memory_settings() -> Settings:
    return Settings(_env_file=None, database_url="memory://")


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest) -> Settings:
    """The same test once on the embedded SQLite store and once on PostgreSQL."""
    settings: Settings = request.getfixturevalue(f"{request.param}_settings")
    return settings


async def _probe_amqp(url: str) -> None:
    connection = await aio_pika.connect(url, timeout=3)
    await connection.close()


def _rabbitmqctl(*args: str) -> bool:
    try:
        done = subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def rabbitmq_server() -> str:
    url = os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL
    try:
        asyncio.run(_probe_amqp(url))
    except Exception as error:
        unavailable("RabbitMQ", error)
    return url


@pytest.fixture(scope="session")
def rabbitmq_vhost(rabbitmq_server: str) -> Iterator[str | None]:
    """A vhost of this test run's own, deleted at the end; None when rabbitmqctl cannot make one.

    rabbitmqctl manages the local node only, so a remote broker keeps its URL's vhost.
    """
    parts = urlsplit(rabbitmq_server)
    if shutil.which("rabbitmqctl") is None or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        yield None
        return
    name = f"saga_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    user = unquote(parts.username or "guest")
    granted = _rabbitmqctl("add_vhost", name) and _rabbitmqctl(
        "set_permissions", "-p", name, user, ".*", ".*", ".*"
    )
    if granted:
        try:
            # The local node may not be the broker at the URL (a container on another port).
            asyncio.run(_probe_amqp(_in_vhost(rabbitmq_server, name)))
        except Exception:
            granted = False
    if not granted:
        _rabbitmqctl("delete_vhost", name)
        yield None
        return
    yield name
    _rabbitmqctl("delete_vhost", name)


def _in_vhost(url: str, vhost: str) -> str:
    return urlsplit(url)._replace(path="/" + quote(vhost, safe="")).geturl()


@pytest.fixture(scope="session")
def rabbitmq_url(rabbitmq_server: str, rabbitmq_vhost: str | None) -> str:
    """AMQP_URL (or the local broker), in this run's own vhost when one could be made."""
    return rabbitmq_server if rabbitmq_vhost is None else _in_vhost(rabbitmq_server, rabbitmq_vhost)


@pytest.fixture
def rabbit_namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    """A prefix for every exchange and queue of one test, so tests share a broker in isolation.

    The test's queues are deleted after it: each quorum queue holds three of the broker's file
    handles, and a broker out of them accepts no connection (clients time out), which a run's
    quorum queues, kept until its vhost goes, would bring about after a few hundred.
    """
    namespace = f"t{uuid.uuid4().hex[:12]}"
    yield namespace
    if "rabbitmq_url" in request.fixturenames and (vhost := request.getfixturevalue("rabbitmq_vhost")):
        listed = subprocess.run(
            ["rabbitmqctl", "list_queues", "-p", vhost, "-q", "--no-table-headers", "name"],
            capture_output=True, text=True, timeout=30, check=False)
        names = [name for name in listed.stdout.split() if name.startswith(f"{namespace}.")]
        if names:
            asyncio.run(_delete_queues(request.getfixturevalue("rabbitmq_url"), names))


async def _delete_queues(url: str, names: list[str]) -> None:
    async with await aio_pika.connect(url, timeout=5) as connection:
        channel = await connection.channel()
        for name in names:  # quorum queues refuse if-unused
            await channel.queue_delete(name, if_unused=False, if_empty=False)


@pytest.fixture(params=["embedded", "postgres_rabbitmq"])
def stack(request: pytest.FixtureRequest) -> tuple[Settings, Bus]:
    """The whole system's stores and bus: SQLite with the in-process bus, or PostgreSQL with RabbitMQ."""
    if request.param == "embedded":
        settings: Settings = request.getfixturevalue("sqlite_settings")
        return settings, InProcessBus(retry_delays=(0.05, 0.1, 0.2))
    settings = request.getfixturevalue("postgres_settings")
    url: str = request.getfixturevalue("rabbitmq_url")
    namespace: str = request.getfixturevalue("rabbit_namespace")
    settings = settings.model_copy(update={"amqp_url": url, "bus_namespace": namespace,
                                           "postgres_pool_size": 5})
    return settings, RabbitBus(url, namespace=namespace, retry_delays=(0.05, 0.1, 0.2))

"""Fixtures shared by every test folder.

Tests that need PostgreSQL or RabbitMQ find them at DATABASE_URL / AMQP_URL
(defaults: the local servers). When a server is unreachable those tests are
skipped with the reason, unless REQUIRE_SERVICES=1, when they fail instead.
Each run works in its own database, and each test in its own schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from infra.settings import PostgresDsn, Settings

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "").lower() in ("1", "y", "yes", "true")


def unavailable(service: str, reason: object) -> None:
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

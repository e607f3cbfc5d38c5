"""Settings read the environment, old names included."""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import resolve_topic
from pydantic import ValidationError

from infra.eventstore.persistence import application_env
from infra.eventstore.sqlite_store import SQLiteExactlyOnceFactory
from infra.settings import PostgresDsn, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "AMQP_URL", "DB_HOST", "RABBITMQ_URL", "RABBITMQ_HOST", "DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_without_a_database_url_the_system_is_embedded_on_sqlite(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    env = application_env(settings, "Orders")
    assert settings.is_embedded
    assert resolve_topic(env["PERSISTENCE_MODULE"]) is SQLiteExactlyOnceFactory
    assert env["SQLITE_DBNAME"] == str(tmp_path / "data" / "orders.sqlite")
    assert (tmp_path / "data").is_dir()


def test_a_database_url_selects_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://shop:s%40cret@db.internal:6543/shop?schema=app")
    env = application_env(Settings(_env_file=None), "Payments")
    assert issubclass(resolve_topic(env["PERSISTENCE_MODULE"]), PostgresFactory)
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == (
        "db.internal", "6543", "shop")
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("shop", "s@cret")
    assert env["POSTGRES_SCHEMA"] == "app"


def test_the_old_db_variables_still_configure_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"DB_HOST": "pg", "DB_PORT": "5433", "DB_USER": "orders",
                        "DB_PASSWORD": "pw", "DB_NAME": "orders_db"}.items():
        monkeypatch.setenv(name, value)
    dsn = Settings(_env_file=None).postgres
    assert dsn == PostgresDsn("pg", 5433, "orders_db", "orders", "pw")


def test_the_old_rabbitmq_variables_still_configure_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_HOST", "mq")
    assert Settings(_env_file=None).amqp_url == "amqp://guest:guest@mq:5672/"


def test_a_database_url_that_is_not_postgresql_is_refused_naming_it() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(_env_file=None, database_url="mysql://x@y/z")


def test_failure_rates_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValidationError, match="payment_failure_rate"):
        Settings(_env_file=None, payment_failure_rate=1.5)


def test_every_message_is_tracked_by_its_own_row_so_out_of_order_delivery_is_kept() -> None:
    env = application_env(Settings(_env_file=None, database_url="memory://"), "Orders")
    assert env["SINGLE_ROW_TRACKING"] == "n"


def test_log_format_is_text_by_default_and_json_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert Settings(_env_file=None).log_format == "text"
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert Settings(_env_file=None).log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "yaml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings(_env_file=None)


def test_queues_are_quorum_unless_classic_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUEUE_TYPE", raising=False)
    assert Settings(_env_file=None).queue_type == "quorum"
    monkeypatch.setenv("QUEUE_TYPE", "classic")
    assert Settings(_env_file=None).queue_type == "classic"
    monkeypatch.setenv("QUEUE_TYPE", "stream")
    with pytest.raises(ValidationError, match="queue_type"):
        Settings(_env_file=None)

"""Each context may keep its events in a database of its own, falling back to DATABASE_URL."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.eventstore.persistence import application_env
from infra.settings import DATABASE_CONTEXTS, PostgresDsn, Settings

SHARED = "postgresql://shop@db:5432/shop"
OWN = {
    "ORDERS": "Orders", "PAYMENTS": "Payments", "INVENTORY": "Inventory", "SHIPPING": "Shipping",
    "NOTIFICATIONS": "Notifications", "SAGAS": "OrderFulfillment",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    own = [f"{context.upper()}_DATABASE_URL" for context in DATABASE_CONTEXTS]
    for name in ("DATABASE_URL", "DB_HOST", "DATA_DIR", *own):
        monkeypatch.delenv(name, raising=False)


def test_a_context_without_a_database_of_its_own_uses_database_url() -> None:
    settings = Settings(_env_file=None, database_url=SHARED)
    for app in (*OWN.values(), "read"):
        assert settings.database_of(app) == PostgresDsn.parse(SHARED)
    assert list(settings.databases) == [PostgresDsn.parse(SHARED)]


@pytest.mark.parametrize(("prefix", "application"), OWN.items())
def test_a_context_s_own_database_url_points_its_application_there_and_only_there(
    monkeypatch: pytest.MonkeyPatch, prefix: str, application: str,
) -> None:
    monkeypatch.setenv(f"{prefix}_DATABASE_URL", f"postgresql://shop@db-{prefix.lower()}:6543/own?schema=s")
    settings = Settings(_env_file=None, database_url=SHARED)

    env = application_env(settings, application)
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"], env["POSTGRES_SCHEMA"]) == (
        f"db-{prefix.lower()}", "6543", "own", "s")
    others = [app for app in OWN.values() if app != application]
    assert {application_env(settings, app)["POSTGRES_HOST"] for app in others} == {"db"}
    assert settings.read_database == PostgresDsn.parse(SHARED)
    assert sorted(settings.databases.values()) == [["DATABASE_URL"], [f"{prefix}_DATABASE_URL"]]


def test_the_read_store_may_have_a_database_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READ_DATABASE_URL", "postgresql://shop@reads:5432/reads")
    settings = Settings(_env_file=None, database_url=SHARED)
    assert settings.read_database == PostgresDsn("reads", 5432, "reads", "shop", "")
    assert settings.database_of("Orders") == PostgresDsn.parse(SHARED)


def test_the_old_db_variables_remain_the_fallback_of_every_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "pg")
    monkeypatch.setenv("DB_NAME", "legacy")
    monkeypatch.setenv("PAYMENTS_DATABASE_URL", "postgresql://postgres@pg:5432/payments")
    settings = Settings(_env_file=None)
    assert settings.database_of("Orders") == PostgresDsn("pg", 5432, "legacy", "postgres", "")
    assert settings.database_of("Payments") == PostgresDsn("pg", 5432, "payments", "postgres", "")


@pytest.mark.parametrize("prefix", [c.upper() for c in DATABASE_CONTEXTS])
def test_a_context_database_url_that_is_not_postgresql_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, prefix: str,
) -> None:
    monkeypatch.setenv(f"{prefix}_DATABASE_URL", "sqlite:///data/own.sqlite")
    with pytest.raises(ValidationError, match=f"{prefix}_DATABASE_URL must be a postgresql:// URL"):
        Settings(_env_file=None, database_url=SHARED)


def test_a_context_on_postgresql_beside_others_on_sqlite_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYMENTS_DATABASE_URL", "postgresql://shop@db:5432/payments")
    refused = "PAYMENTS_DATABASE_URL on PostgreSQL beside contexts on SQLite"
    with pytest.raises(ValidationError, match=refused):
        Settings(_env_file=None)


def test_every_context_on_its_own_database_needs_no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for context in DATABASE_CONTEXTS:
        monkeypatch.setenv(f"{context.upper()}_DATABASE_URL", f"postgresql://shop@db:5432/{context}")
    settings = Settings(_env_file=None)
    assert not settings.is_embedded
    assert [dsn.dbname for dsn in settings.databases] == list(DATABASE_CONTEXTS)


def test_a_blank_context_database_url_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERS_DATABASE_URL", " ")
    settings = Settings(_env_file=None)
    assert settings.is_embedded and settings.database_of("Orders") is None

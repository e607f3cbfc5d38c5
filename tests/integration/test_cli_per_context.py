"""The commands that open the stores, with each context on a database of its own.

`saga migrate` creates each database and its context's tables there, `saga verify` and
`saga projections rebuild` read every context's own database, and `saga reset` refuses
naming each variable and database. DATABASE_URL names a database that does not exist,
so a command that still read it would fail.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from typer.testing import CliRunner, Result

from infra.cli.main import app
from infra.settings import DATABASE_CONTEXTS, PostgresDsn
from tests.context_databases import APPLICATION_OF, event_tables, own_databases, settings_on

runner = CliRunner()


@pytest.fixture
def databases(postgres_server: PostgresDsn) -> Iterator[dict[str, PostgresDsn]]:
    with own_databases(postgres_server, create=False) as databases:
        yield databases


@pytest.fixture
def environment(databases: dict[str, PostgresDsn], postgres_server: PostgresDsn) -> dict[str, str | None]:
    settings = settings_on(databases, postgres_server)
    env: dict[str, str | None] = {"DATABASE_URL": settings.database_url, "DB_HOST": None, "AMQP_URL": None,
                                  "COLUMNS": "200"}
    env.update({f"{context.upper()}_DATABASE_URL": dsn.url for context, dsn in databases.items()})
    return env


def saga(environment: dict[str, str | None], *args: str) -> Result:
    return runner.invoke(app, list(args), env=environment)


def rows(dsn: PostgresDsn, table: str) -> int:
    with psycopg.connect(dsn.url) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


def test_migrate_creates_each_context_s_database_with_its_own_tables_there(
    environment: dict[str, str | None], databases: dict[str, PostgresDsn],
) -> None:
    migrated = saga(environment, "migrate")
    again = saga(environment, "migrate")

    assert migrated.exit_code == 0, migrated.output
    for dsn in databases.values():
        assert f"created database {dsn.dbname}\n" in migrated.stderr
    for context, dsn in databases.items():
        own = {} if context == "read" else {f"{APPLICATION_OF[context].lower()}_events": 0}
        assert event_tables(dsn) == own, context
    assert rows(databases["read"], "read_orders") == 0
    assert again.exit_code == 0 and "created database" not in again.stderr, again.output


def test_verify_and_rebuild_read_each_context_s_own_database(
    environment: dict[str, str | None], databases: dict[str, PostgresDsn],
) -> None:
    assert saga(environment, "migrate").exit_code == 0
    seeded = saga(environment, "seed")
    assert seeded.exit_code == 0 and "5 product(s) listed" in seeded.stderr, seeded.output

    verified = saga(environment, "verify")
    rebuilt = saga(environment, "projections", "rebuild")

    assert verified.exit_code == 0, verified.output
    assert "of 6 application(s)" in verified.stderr and "verified: 0 event(s)" not in verified.stderr
    assert rebuilt.exit_code == 0, rebuilt.output
    assert rows(databases["read"], "read_products") == 5
    assert event_tables(databases["inventory"])["inventory_events"] > 0


def test_reset_refuses_naming_each_context_s_variable_and_database(
    environment: dict[str, str | None], databases: dict[str, PostgresDsn],
) -> None:
    refused = saga(environment, "reset", "--yes")

    assert refused.exit_code == 2, refused.output
    for context in DATABASE_CONTEXTS:
        assert f"{context.upper()}_DATABASE_URL" in refused.stderr
        assert f"(DROP DATABASE {databases[context].dbname})" in refused.stderr
    assert "DATABASE_URL is" not in refused.stderr  # the shared one is nobody's here

"""`saga migrate` creates the database DATABASE_URL names when the server has none of that name;
every other command says it is missing instead, and creates nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner, Result

from infra.cli.main import app
from infra.settings import PostgresDsn

runner = CliRunner()


def saga(*args: str, url: str) -> Result:
    return runner.invoke(app, list(args), env={"DATABASE_URL": url, "DB_HOST": None, "COLUMNS": "200"})


def exists(server: PostgresDsn, name: str) -> bool:
    with psycopg.connect(server.url) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


@pytest.fixture
def user_without_createdb(postgres_server: PostgresDsn) -> Iterator[str]:
    name = f"saga_user_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(postgres_server.url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def url_of(server: PostgresDsn, database: str, user: str | None = None) -> str:
    auth = user or server.user + (f":{server.password}" if server.password else "")
    return f"postgresql://{auth}@{server.host}:{server.port}/{database}"


def test_migrate_creates_a_database_that_does_not_exist_then_its_tables(
    postgres_server: PostgresDsn, new_database: str
) -> None:
    url = url_of(postgres_server, new_database)

    first = saga("migrate", url=url)
    again = saga("migrate", url=url)
    seeded = saga("seed", url=url)

    assert first.exit_code == 0, first.output
    assert f"created database {new_database}\n" in first.stderr
    assert "event store tables ready" in first.stderr
    assert exists(postgres_server, new_database)
    assert again.exit_code == 0, again.output
    assert "created database" not in again.stderr
    assert seeded.exit_code == 0 and "5 product(s) listed" in seeded.stderr, seeded.output


@pytest.mark.parametrize("command", [["seed"], ["audit", str(uuid.uuid4())], ["projections", "status"]],
                         ids=" ".join)
def test_other_commands_say_the_database_does_not_exist_and_create_none(
    postgres_server: PostgresDsn, new_database: str, command: list[str]
) -> None:
    result = saga(*command, url=url_of(postgres_server, new_database))

    assert result.exit_code == 3, result.output
    missing = f"error: database {new_database} does not exist: run `saga migrate` first"
    assert result.stderr.startswith(missing), result.stderr
    assert not exists(postgres_server, new_database)


def test_migrate_by_a_user_who_may_not_create_databases_says_so_in_one_line(
    postgres_server: PostgresDsn, new_database: str, user_without_createdb: str
) -> None:
    result = saga("migrate", url=url_of(postgres_server, new_database, user_without_createdb))

    assert result.exit_code == 3, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: database {new_database} does not exist, and user {user_without_createdb} "
                           "may not create it"), line
    assert "CREATEDB" in line
    assert not exists(postgres_server, new_database)

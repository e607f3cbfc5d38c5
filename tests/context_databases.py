"""Every context on a PostgreSQL database of its own, and what each database holds afterwards.

The tests of a database per context (`<CONTEXT>_DATABASE_URL`) point DATABASE_URL at a
database that does not exist, so that anything still reading the shared database fails
loudly instead of passing by accident.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from infra.settings import APPLICATION_CONTEXTS, DATABASE_CONTEXTS, READ_STORE, PostgresDsn, Settings

APPLICATION_OF = {context: application for application, context in APPLICATION_CONTEXTS.items()}


@contextmanager
def own_databases(server: PostgresDsn, *, create: bool = True) -> Iterator[dict[str, PostgresDsn]]:
    """A fresh database for each context and the read store, by context ("orders"), dropped at the end.

    With `create=False` they are only named, for `saga migrate` to create.
    """
    run = uuid.uuid4().hex[:8]
    databases = {
        context: PostgresDsn(server.host, server.port, f"saga-{run}-{context}", server.user, server.password)
        for context in DATABASE_CONTEXTS
    }
    try:
        with psycopg.connect(server.url, autocommit=True) as connection:
            for dsn in databases.values() if create else ():
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dsn.dbname)))
        yield databases
    finally:
        with psycopg.connect(server.url, autocommit=True) as connection:
            for dsn in databases.values():
                connection.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dsn.dbname)))


def settings_on(databases: dict[str, PostgresDsn], server: PostgresDsn, **fields: Any) -> Settings:
    """Settings with each context on its own database, and DATABASE_URL on one that does not exist."""
    nowhere = PostgresDsn(server.host, server.port, f"saga-nowhere-{uuid.uuid4().hex[:8]}", server.user,
                          server.password)
    own = {f"{context}_database_url": dsn.url for context, dsn in databases.items()}
    return Settings(_env_file=None, **{"database_url": nowhere.url, **own, **fields})


def event_tables(dsn: PostgresDsn) -> dict[str, int]:
    """Each events table of the database, with the number of events it holds."""
    with psycopg.connect(dsn.url) as connection:
        tables = [name for (name,) in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE %s",
            ("%\\_events",))]
        return {
            table: int(connection.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0])  # type: ignore[index]
            for table in tables
        }


def assert_each_database_holds_only_its_own_events(databases: dict[str, PostgresDsn]) -> None:
    """Each context's database holds its own application's events, and none of another's."""
    for context, dsn in databases.items():
        held = event_tables(dsn)
        if context == READ_STORE:
            assert held == {}, f"the read store's database holds events: {held}"
            continue
        own = f"{APPLICATION_OF[context].lower()}_events"
        assert set(held) == {own}, f"{context}'s database holds {sorted(held)}"
        assert held[own] > 0, f"{context}'s database holds no events"

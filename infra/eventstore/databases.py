"""The PostgreSQL database DATABASE_URL names: whether the server has it, and creating it.

Both are asked of the server's maintenance database (`postgres`), with the same user, as
`createdb` does: a database that does not exist cannot be connected to, so the only way to
tell "no such database" from "no such server" without reading a translated message is to
ask another database on the same server.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from infra.settings import PostgresDsn

MAINTENANCE_DATABASE = "postgres"


class CannotCreateDatabaseError(Exception):
    """The server refused to create the database; the message says why and what to do."""


def database_exists(dsn: PostgresDsn, timeout: int) -> bool | None:
    """Whether the server has `dsn`'s database; None when its maintenance database does not answer."""
    try:
        with _maintenance(dsn, timeout) as connection:
            return _exists(connection, dsn.dbname)
    except psycopg.Error:
        return None


def create_database(dsn: PostgresDsn, timeout: int) -> bool:
    """Create `dsn`'s database unless it exists; True when this call created it.

    Raises CannotCreateDatabaseError when the user may not create databases, and
    psycopg.OperationalError when the maintenance database does not answer.
    """
    with _maintenance(dsn, timeout) as connection:
        if _exists(connection, dsn.dbname):
            return False
        try:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dsn.dbname)))
        except psycopg.errors.DuplicateDatabase:  # another `saga migrate` created it first
            return False
        except psycopg.errors.InsufficientPrivilege as error:
            reason = (error.diag.message_primary or str(error)).strip()
            raise CannotCreateDatabaseError(
                f"database {dsn.dbname} does not exist, and user {dsn.user} may not create it on "
                f"{dsn.host}:{dsn.port} ({reason}): create it as a user who may (createdb {dsn.dbname}), "
                "or give this one CREATEDB"
            ) from None
    return True


def _maintenance(dsn: PostgresDsn, timeout: int) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=dsn.host, port=dsn.port, dbname=MAINTENANCE_DATABASE, user=dsn.user,
                           password=dsn.password or None, connect_timeout=timeout, autocommit=True)


def _exists(connection: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

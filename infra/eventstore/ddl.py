"""Creating schemas, tables, types and functions on PostgreSQL, one process at a time.

Every role process creates the tables it needs when it starts (CREATE_TABLE,
on by default), so processes started together run the same `CREATE ... IF NOT
EXISTS`, `CREATE TYPE` and `CREATE OR REPLACE FUNCTION` at once. PostgreSQL
decides "it does not exist yet" before it writes its catalogue, so two of them
can both go ahead and one fails: a duplicate key in `pg_type`, or "tuple
concurrently updated". Every transaction that changes the schema therefore
takes one advisory lock first. A transaction-level lock is released by the
commit or the rollback, and by the server when a process dies mid-way, so it
never outlives the DDL it guards.
"""

from __future__ import annotations

import contextlib

import psycopg
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresRecorder,
    PostgresTrackingRecorder,
)
from psycopg import sql
from psycopg.errors import DuplicateObject

from infra.settings import PostgresDsn

SERIALISE_DDL = "SELECT pg_advisory_xact_lock(7240311)"
"""The first statement of every transaction that changes the schema, on either driver."""


class SerialisedDDL(PostgresRecorder):
    """A recorder that creates its types, tables and indexes in one transaction, under SERIALISE_DDL.

    A recorder class lists it after the library's class, so that this
    `create_table` stands in for PostgresRecorder's own and the tracking
    recorder's checks around it still run.
    """

    def create_table(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(SERIALISE_DDL)
            for statement in self.sql_create_statements:
                if "CREATE TYPE" in statement.as_string():
                    # No IF NOT EXISTS for types: a savepoint lets the transaction go on
                    # when an earlier start created it.
                    with contextlib.suppress(DuplicateObject), cursor.connection.transaction():
                        cursor.execute(statement, prepare=False)
            self._create_table(cursor)  # the rest, in the library's order
        self.datastore.register_type_adapters()


class SerialisedAggregateRecorder(PostgresAggregateRecorder, SerialisedDDL):
    """The snapshot store's recorder."""


class SerialisedApplicationRecorder(PostgresApplicationRecorder, SerialisedDDL):
    pass


class SerialisedTrackingRecorder(PostgresTrackingRecorder, SerialisedDDL):
    pass


def create_schema(dsn: PostgresDsn) -> None:
    """Create the schema DATABASE_URL names (`?schema=`) unless it exists."""
    if not dsn.schema_name:
        return
    with psycopg.connect(dsn.url) as connection:
        # CREATE SCHEMA asks for the CREATE privilege on the database even when the
        # schema exists: a deployment whose user may not create schemas still starts.
        exists = connection.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (dsn.schema_name,)
        ).fetchone()
        if exists is None:
            connection.execute(SERIALISE_DDL)
            connection.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(dsn.schema_name))
            )

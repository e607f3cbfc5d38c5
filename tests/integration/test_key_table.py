"""The PostgreSQL table of the customers' keys rides out the server ending its session mid-statement."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from infra.eventstore.key_tables import PostgresKeyTable
from infra.settings import PostgresDsn, Settings

pytestmark = pytest.mark.integration

KEYS_SESSION = "saga personal data keys"


@pytest.fixture
def where(postgres_settings: Settings) -> PostgresDsn:
    assert postgres_settings.postgres is not None
    return postgres_settings.postgres


@pytest.fixture
def table(where: PostgresDsn) -> Iterator[PostgresKeyTable]:
    keys = PostgresKeyTable(where)
    yield keys
    keys.close()


def waiting_sessions(admin: psycopg.Connection[tuple[object, ...]], dbname: str) -> list[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s"
        " AND wait_event_type = 'Lock'", (dbname, KEYS_SESSION),
    ).fetchall()
    return [int(str(pid)) for (pid,) in rows]


def test_keys_asked_for_while_the_server_ends_the_session_are_created_once_and_returned(
    where: PostgresDsn, table: PostgresKeyTable
) -> None:
    subjects = [uuid.uuid4(), uuid.uuid4()]
    outcome: dict[str, object] = {}

    def add() -> None:
        try:
            outcome["kept"] = table.add_many({s: s.bytes * 2 for s in subjects})
        except Exception as error:  # reported by the assertion below
            outcome["error"] = error

    with psycopg.connect(where.url, autocommit=True) as admin:
        # Hold the table so the insert waits on the server, then end the session it waits in.
        locker = psycopg.connect(where.url)
        locker.execute(sql.SQL("LOCK TABLE {}.personal_data_keys IN ACCESS EXCLUSIVE MODE").format(
            sql.Identifier(where.schema_name or "public")))
        adding = threading.Thread(target=add)
        adding.start()
        deadline = time.monotonic() + 10
        while not (pids := waiting_sessions(admin, where.dbname)):
            assert time.monotonic() < deadline, "the insert never waited on the lock"
            time.sleep(0.05)
        assert [admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() for pid in pids]
        locker.rollback()
        locker.close()
        adding.join(timeout=30)

    assert "error" not in outcome, outcome.get("error")
    assert outcome["kept"] == {s: s.bytes * 2 for s in subjects}
    assert table.get_many(subjects) == outcome["kept"]
    with psycopg.connect(where.url, autocommit=True) as reader:
        count = reader.execute(sql.SQL("SELECT count(*) FROM {}.personal_data_keys").format(
            sql.Identifier(where.schema_name or "public"))).fetchone()
    assert count == (2,)

"""Processes that start together create the same schema and tables at the same moment, and all succeed.

Each thread here builds the system on connections of its own, so to PostgreSQL
it is one more process starting.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace

import psycopg

from infra.bootstrap import bootstrap
from infra.eventstore.ddl import create_schema
from infra.readstore.postgres import PostgresStore
from infra.settings import PostgresDsn, Settings
from projections.catalog import migrate

STARTING_TOGETHER = 6


def at_once(start: Callable[[], None], copies: int = STARTING_TOGETHER) -> list[BaseException]:
    """Run `start` in `copies` threads released at the same instant; the errors they raised."""
    barrier = threading.Barrier(copies)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            start()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a start never finished"
    return errors


def build_every_application(settings: Settings) -> None:
    with bootstrap(settings) as system:
        for application in system.applications:
            application.recorder.max_notification_id()


async def create_read_tables(dsn: PostgresDsn) -> None:
    """What the api and projector roles do first: open the read store and create its tables."""
    store = await PostgresStore.connect(dsn, max_size=1)
    try:
        await migrate(store)
    finally:
        await store.close()


def table_names(dsn: PostgresDsn) -> set[str]:
    with psycopg.connect(dsn.url) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (dsn.schema_name,)
        ).fetchall()
    return {name for name, in rows}


def test_processes_creating_the_event_stores_at_once_all_start_and_restart(
    postgres_settings: Settings,
) -> None:
    settings = postgres_settings.model_copy(update={"postgres_pool_size": 1})

    assert at_once(lambda: build_every_application(settings)) == [], "a first start failed"
    assert at_once(lambda: build_every_application(settings)) == [], "a restart over existing tables failed"

    assert settings.postgres is not None
    created = table_names(settings.postgres)
    assert {"orders_events", "orders_tracking", "inventory_snapshots", "orderfulfillment_events"} <= created


def test_roles_starting_together_on_a_missing_schema_create_it_and_the_read_tables(
    postgres_database: PostgresDsn,
) -> None:
    dsn = replace(postgres_database, schema_name=f"t_{uuid.uuid4().hex[:12]}")

    def start() -> None:
        create_schema(dsn)
        asyncio.run(create_read_tables(dsn))

    assert at_once(start) == []

    assert {"projection_tracking", "read_orders"} <= table_names(dsn)

"""A fresh store for each run (SQLite files, or a new PostgreSQL database and RabbitMQ namespace), removed
afterwards, and the checkpoint that lets one run's aftermath pass before the next."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import psycopg
from psycopg import sql

from bench.throughput.config import FAILURE_RATES, QUEUES, Config
from infra.messaging.bus import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, RETRY_DELAYS_SECONDS
from infra.settings import PostgresDsn, Settings


@contextlib.contextmanager
def fresh_store(mode: str, config: Config) -> Iterator[Settings]:
    """Settings for a new SQLite directory, or a new database and bus namespace."""
    common: dict[str, Any] = {
        "_env_file": None,
        "failure_seed": config.failure_seed,
        "log_level": "WARNING",
        **FAILURE_RATES,
    }
    if mode == "a":
        with tempfile.TemporaryDirectory(prefix="bench_saga_") as tmp:
            yield Settings(**common, database_url=None, amqp_url=None, data_dir=Path(tmp) / "data")
        return
    server = config.server
    name = f"bench_saga_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    namespace = f"bench{uuid.uuid4().hex[:10]}"
    settle(config)
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = PostgresDsn(server.host, server.port, name, server.user, server.password)
    try:
        yield Settings(**common, database_url=dsn.url, amqp_url=config.amqp_url, bus_namespace=namespace,
                       personal_data_encryption=mode != "b0")
    finally:
        try:
            asyncio.run(delete_namespace(config.amqp_url, namespace))
        finally:
            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def settle(config: Config) -> None:
    """Let the last run's aftermath pass before the next is measured.

    A run leaves PostgreSQL with tens of megabytes of dirty pages; the server
    flushes them at its next checkpoint, which would otherwise land, with the
    CPU and disk it costs, in the middle of the next run (the peer's included).
    """
    with psycopg.connect(config.server.url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    time.sleep(2)


async def delete_namespace(url: str, namespace: str) -> None:
    """Delete every queue and exchange a namespace can have (see infra.messaging.rabbitmq)."""
    names = []
    for queue in QUEUES:
        names += [f"{namespace}.{queue}", f"{namespace}.{queue}.dead"]
        names += [f"{namespace}.{queue}.retry.{n}" for n in range(1, len(RETRY_DELAYS_SECONDS) + 1)]
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for queue_name in names:
            try:
                await channel.queue_delete(queue_name)
            except aio_pika.exceptions.AMQPError:  # absent: the channel closes, open another
                channel = await connection.channel()
        for exchange in (EVENTS_EXCHANGE, COMMANDS_EXCHANGE):
            try:
                await channel.exchange_delete(f"{namespace}.{exchange}")
            except aio_pika.exceptions.AMQPError:
                channel = await connection.channel()

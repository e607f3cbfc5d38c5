"""A fresh store for each run (SQLite files, or new PostgreSQL databases and a RabbitMQ namespace), removed
afterwards, and the checkpoint that lets one run's aftermath pass before the next."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import psycopg
from psycopg import sql

from bench.throughput.config import CONTEXT_DATABASES, FAILURE_RATES, QUEUES, Config
from infra.messaging import cluster
from infra.messaging.bus import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, RETRY_DELAYS_SECONDS
from infra.settings import PostgresDsn, Settings


@contextlib.contextmanager
def fresh_store(mode: str, config: Config) -> Iterator[Settings]:
    """Settings for a new SQLite directory, or new databases and a bus namespace.

    Mode d gives each context and the read store a database of its own, and runs its bus on the three-node
    cluster of `infra.messaging.cluster` (started if it is not running) with quorum queues.
    """
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
    names = [f"{name}_{context.lower()}" for context in CONTEXT_DATABASES] if mode == "d" else [name]
    amqp_url = cluster.start(cluster.nodes()) if mode == "d" else config.amqp_url
    settle(config)
    with psycopg.connect(server.url, autocommit=True) as conn:
        for database in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    urls = [PostgresDsn(server.host, server.port, database, server.user, server.password).url
            for database in names]
    where: dict[str, Any] = (
        {"database_url": None} | {f"{context.lower()}_database_url": url for context, url in zip(
            CONTEXT_DATABASES, urls, strict=True)}
        | {"queue_type": "quorum"} if mode == "d" else {"database_url": urls[0]}
    )
    try:
        yield Settings(**common, **where, amqp_url=amqp_url, bus_namespace=namespace,
                       personal_data_encryption=mode != "b0")
    finally:
        try:
            delete_namespace(amqp_url, namespace, cluster.nodes()[0] if mode == "d" else None)
        finally:
            with psycopg.connect(server.url, autocommit=True) as conn:
                for database in names:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
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


def delete_namespace(url: str, namespace: str, node: cluster.Node | None = None) -> None:
    """Delete every queue and exchange of a namespace: quorum queues hold the broker's file handles.

    The queues are listed by `rabbitmqctl` (of the cluster's node, with `node`); where it cannot list them,
    the topology's own names are tried.
    """
    try:
        listed = cluster.queue_names(node) if node is not None else subprocess.run(
            ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name"],
            capture_output=True, text=True, timeout=60, check=True).stdout.split()
        names = [queue for queue in listed if queue.startswith(f"{namespace}.")]
    except (OSError, RuntimeError, subprocess.SubprocessError):
        names = []
        for queue in QUEUES:
            names += [f"{namespace}.{queue}", f"{namespace}.{queue}.dead"]
            names += [f"{namespace}.{queue}.retry.{n}" for n in range(1, len(RETRY_DELAYS_SECONDS) + 1)]
    asyncio.run(_delete(url.split(",")[0], namespace, names))


async def _delete(url: str, namespace: str, names: list[str]) -> None:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for queue_name in names:
            try:
                await channel.queue_delete(queue_name, if_unused=False, if_empty=False)
            except aio_pika.exceptions.AMQPError:  # absent: the channel closes, open another
                channel = await connection.channel()
        for exchange in (EVENTS_EXCHANGE, COMMANDS_EXCHANGE):
            try:
                await channel.exchange_delete(f"{namespace}.{exchange}")
            except aio_pika.exceptions.AMQPError:
                channel = await connection.channel()

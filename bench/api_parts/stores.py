"""Stores: a fresh one per run, removed afterwards (a SQLite directory, or a database and a vhost)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import psycopg
from psycopg import sql

from bench.api_parts.config import FAILURE_RATES, Config, RunFailed
from bench.throughput.stores import delete_namespace
from infra.settings import PostgresDsn

SETTLE_S = 2.0


def server_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any store, broker or auth setting of its own, plus `extra`."""
    own = ("DATABASE_URL", "AMQP_URL", "BUS_NAMESPACE", "DATA_DIR")
    # An inherited AUTH_* (an issuer, another key, AUTH_MODE) would change what the server accepts:
    # the bench chooses the mode itself and mints the tokens it sends.
    env = {k: v for k, v in os.environ.items()
           if k not in own and not k.startswith(("DB_", "RABBITMQ_", "AUTH_"))}
    env.update({
        "FAILURE_SEED": "0",
        **{name.upper(): str(value) for name, value in FAILURE_RATES.items()},
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    })
    return env


@contextlib.contextmanager
def fresh_store(store: str, config: Config, work: Path) -> Iterator[dict[str, str]]:
    """The server's environment for a new SQLite directory, or a new database and vhost."""
    seed = {"FAILURE_SEED": str(config.failure_seed), "ADMIN_TOKEN": uuid.uuid4().hex}
    if store == "sqlite":
        yield server_environment(DATA_DIR=str(work / "data"), **seed)
        return
    server = config.server
    name = f"bench_api_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    settle(config)
    with admin_connection(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = PostgresDsn(server.host, server.port, name, server.user, server.password)
    namespace = f"bench{uuid.uuid4().hex[:10]}"
    vhost = make_vhost(config.amqp_url, name)
    amqp_url = config.amqp_url if vhost is None else in_vhost(config.amqp_url, vhost)
    try:
        env = server_environment(DATABASE_URL=dsn.url, AMQP_URL=amqp_url, BUS_NAMESPACE=namespace, **seed)
        for command in ("migrate", "seed"):
            cli(command, env, work)
        yield {**env, "CREATE_TABLE": "n"}
    finally:
        try:
            if vhost is None:
                delete_namespace(amqp_url, namespace)
            else:
                rabbitmqctl("delete_vhost", vhost)
        finally:
            with admin_connection(server) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def cli(command: str, env: dict[str, str], work: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", command], env=env, cwd=work,
        capture_output=True, text=True, timeout=180, check=False,
    )
    if done.returncode != 0:
        raise RunFailed(f"saga {command} failed: {done.stdout[-1000:]}{done.stderr[-2000:]}")


def settle(config: Config) -> None:
    """Have PostgreSQL flush the last run's dirty pages now, not in the middle of a measurement."""
    with admin_connection(config.server) as conn:
        conn.execute("CHECKPOINT")
    time.sleep(SETTLE_S)


def admin_connection(server: PostgresDsn, within: float = 120.0) -> psycopg.Connection[Any]:
    """A connection to the server's own database, waiting while others hold every connection slot."""
    deadline = time.monotonic() + within
    while True:
        try:
            return psycopg.connect(server.url, autocommit=True)
        except psycopg.OperationalError as error:
            if "too many clients" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def rabbitmqctl(*args: str) -> bool:
    try:
        done = subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def make_vhost(amqp_url: str, name: str) -> str | None:
    """A vhost of the run's own on the local broker (as tests/conftest.py makes), or None."""
    parts = urlsplit(amqp_url)
    if shutil.which("rabbitmqctl") is None or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    user = unquote(parts.username or "guest")
    if rabbitmqctl("add_vhost", name) and rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*"):
        return name
    rabbitmqctl("delete_vhost", name)
    return None


def in_vhost(url: str, vhost: str) -> str:
    return urlsplit(url)._replace(path="/" + quote(vhost, safe="")).geturl()


def settle_store(store: str, config: Config) -> None:
    if store == "postgres":
        settle(config)
    else:
        time.sleep(SETTLE_S)

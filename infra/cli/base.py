"""What every `saga` command shares: what an exit status means, the one line that ends a failure, the
settings, and reaching the stores and the bus before any work.

An expected failure (a bad argument, an unknown id, a server that does not answer) ends with one line on
stderr naming what was wrong, never a traceback. The database and the broker are tried before any work,
with a short timeout, so an unreachable one is named at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from enum import IntEnum
from typing import NoReturn
from urllib.parse import urlsplit

import psycopg
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from infra.bootstrap import System, bootstrap, make_bus
from infra.cli.stores import NoStoreError, find_bus_queues, find_event_stores, keeps_data_dir
from infra.eventstore.databases import CannotCreateDatabaseError, create_database, database_exists
from infra.messaging.bus import Bus
from infra.messaging.rabbitmq_connection import connect
from infra.messaging.rabbitmq_queues import QueueTypeError
from infra.settings import PostgresDsn, Settings


class ExitCode(IntEnum):
    """What the exit status of every `saga` command means."""

    OK = 0
    FAILED = 1  # what was asked for went wrong: `demo` orders not placed or not finished in time
    USAGE = 2  # click's own for a bad option or argument; a bad environment variable too
    UNREACHABLE = 3  # the database, the broker or the API did not answer
    NOT_FOUND = 4  # no such order or parked message


CONNECT_TIMEOUT = 5  # seconds to wait for the database or the broker before giving up
# The clients of the database and the broker, which log a failure to connect before raising it.
CLIENT_LOGGERS = ("aio_pika", "aiormq", "pamqp", "psycopg", "eventsourcing")
DATABASE = ("Reads DATABASE_URL (PostgreSQL); unset, the SQLite files under DATA_DIR (default ./data), "
            "as the embedded `saga serve` keeps them.")
BROKER = ("Reads AMQP_URL and BUS_NAMESPACE (RabbitMQ); unset, the in-process bus's queues in "
          "DATA_DIR/bus.sqlite, which the embedded `saga serve` shares with this command.")


def paragraphs(*texts: str) -> str:
    # Typer keeps single line breaks in help text: each paragraph is one line here.
    return "\n\n".join(texts)


def exit_codes(*meanings: str) -> str:
    return "Exit codes:\n" + "\n".join(f"  {meaning}" for meaning in meanings)


BAD_ENV = "2  a bad option, argument or environment variable"
NO_DATABASE = "3  cannot reach the database (DATABASE_URL)"
NO_STORE = "3  cannot reach the database (DATABASE_URL), or no store in DATA_DIR (unset: ./data)"
NO_BROKER = "3  cannot reach the broker (AMQP_URL), or no bus queues in DATA_DIR (unset: ./data)"

console = Console(stderr=True)
out = Console()


def fail(code: ExitCode, message: str) -> NoReturn:
    """End the command with `code`, saying on stderr what was wrong."""
    console.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            ".".join(str(part).upper() for part in problem["loc"]) + ": " + problem["msg"]
            if problem["loc"] else problem["msg"].removeprefix("Value error, ")
            for problem in error.errors()
        )
        fail(ExitCode.USAGE, f"bad configuration: {problems}")


@contextmanager
def libraries_quiet() -> Iterator[None]:
    """While a server is tried, the clients' own loggers say nothing: the command names it, in one line."""
    loggers = [logging.getLogger(name) for name in CLIENT_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def reach_database(settings: Settings, *, create: bool = False) -> None:
    """Fail with UNREACHABLE, naming the server and its variable, unless every PostgreSQL database answers.

    DATABASE_URL's, and each context's own (`<CONTEXT>_DATABASE_URL`). A server that answers without
    the database names it, and `create` creates it (for `saga migrate`).
    """
    for dsn, variables in settings.databases.items():
        _reach(dsn, " or ".join(variables), create=create)


def _reach(dsn: PostgresDsn, variable: str, *, create: bool) -> None:
    started = time.monotonic()
    try:
        with libraries_quiet():
            psycopg.connect(dsn.url, connect_timeout=CONNECT_TIMEOUT).close()
        return
    except psycopg.OperationalError as error:
        failure = error
    where = f"postgresql://{dsn.user}@{dsn.host}:{dsn.port}/{dsn.dbname}"
    # A server that did not answer in time is not asked again, which would double the wait.
    if time.monotonic() - started < CONNECT_TIMEOUT and database_exists(dsn, CONNECT_TIMEOUT) is False:
        if not create:
            fail(ExitCode.UNREACHABLE, f"database {dsn.dbname} does not exist: run `saga migrate` first, "
                                       f"or correct {variable} ({where})")
        try:
            if create_database(dsn, CONNECT_TIMEOUT):
                console.print(f"created database {dsn.dbname}", highlight=False)
            return
        except CannotCreateDatabaseError as error:
            fail(ExitCode.UNREACHABLE, str(error))
        except psycopg.OperationalError as error:
            failure = error
    reason = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
    fail(ExitCode.UNREACHABLE, f"cannot reach the database at {where} ({variable}): {reason}")


def open_system() -> System:
    settings = load_settings()
    reach_database(settings)
    return bootstrap(settings)


def open_stored_system() -> System:
    """The system, for a command that only reads: it never creates a store on the embedded default."""
    settings = load_settings()
    reach_database(settings)
    if keeps_data_dir(settings):
        try:
            find_event_stores(settings.data_dir)
        except NoStoreError as error:
            fail(ExitCode.UNREACHABLE, str(error))
    return bootstrap(settings)


async def reach_broker(settings: Settings) -> None:
    """Fail with UNREACHABLE, naming the broker, unless the RabbitMQ of AMQP_URL answers."""
    if settings.amqp_url:
        try:
            with libraries_quiet():
                connection = await connect(settings.amqp_url, attempt_within=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as error:
            _broker_unreachable(settings, error)
        await connection.close()


@asynccontextmanager
async def started_bus(settings: Settings) -> AsyncIterator[Bus]:
    if not settings.amqp_url and not settings.is_in_memory:  # the in-process bus's queues, in DATA_DIR
        try:
            find_bus_queues(settings.data_dir)
        except NoStoreError as error:
            fail(ExitCode.UNREACHABLE, str(error))
    bus = make_bus(settings)
    try:
        with libraries_quiet():
            await bus.start()
    except (OSError, TimeoutError) as error:
        _broker_unreachable(settings, error)
    try:
        yield bus
    except QueueTypeError as error:
        fail(ExitCode.FAILED, str(error))
    finally:
        await bus.close()


def _broker_unreachable(settings: Settings, error: BaseException) -> NoReturn:
    nodes = [urlsplit(url) for url in (settings.amqp_url or "").split(",")]
    where = ", ".join(f"amqp://{parts.hostname}:{parts.port or 5672}{parts.path or '/'}" for parts in nodes)
    reason = str(error) or type(error).__name__
    fail(ExitCode.UNREACHABLE, f"cannot reach the broker at {where} (AMQP_URL): {reason}")

"""`saga serve`: the roles this process runs, its web server, and what is checked before anything opens."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Hashable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infra.affinity import keep_to_cpus, serving_cpus
from infra.bootstrap import assemble, migrate
from infra.cli.base import (
    ExitCode,
    console,
    exit_codes,
    fail,
    load_settings,
    paragraphs,
    reach_broker,
    reach_database,
)
from infra.cli.ports import PortUnavailableError, check_port
from infra.cli.serve_banner import banner
from infra.cli.serve_workers import run_workers, shared_socket, worker_number
from infra.cli.stores import StoreInUseError, holding, keeps_data_dir
from infra.eventstore.ddl import create_schema
from infra.observability.logs import configure_logging
from infra.observability.tracing import configure_tracing
from infra.readstore.opening import migrate_read_store
from infra.runtime import ROLES, WORKER_PORTS, Runtime, run_event_loop
from infra.settings import Settings
from read_api.identity import AuthMode, is_loopback, resolve_mode

if TYPE_CHECKING:  # the web stack is imported when a server starts: every other command starts sooner
    from projections.read_model import ReadModel
    from read_api.answer_cache import Freshness
    from read_api.ports import ReadyCheck

HELP = paragraphs(
    "Run the system: every role in one process, or only the roles chosen with --role.",
    "With neither DATABASE_URL nor AMQP_URL this is the embedded default: SQLite files under DATA_DIR "
    "(default ./data), the in-process bus, the seed catalogue listed on the first start, and the API "
    "with GraphiQL at /graphql. With DATABASE_URL (PostgreSQL) and AMQP_URL (RabbitMQ) each role can run "
    "in a process of its own, in as many copies as you like: run `saga migrate` once, then start each "
    "with CREATE_TABLE=n. The api role serves GraphQL, REST, /healthz, /readyz and /metrics; a worker "
    "role serves /api/v1/health and /metrics on its own port. Runs until Ctrl-C or SIGTERM.",
    "Examples:\n  saga serve\n  saga serve --host 0.0.0.0 --port 8080\n"
    "  CREATE_TABLE=n saga serve --role payments --port 8012",
)
EPILOG = exit_codes(
    "0  stopped by Ctrl-C or SIGTERM", "1  the server did not start (a port in use, ...)",
    "2  an unknown --role, --role without AMQP_URL, or a bad environment variable",
    "3  cannot reach the database (DATABASE_URL) or the broker (AMQP_URL) at start",
)


def serve(
    host: Annotated[str | None, typer.Option(
        help="Interface to listen on; 0.0.0.0 for every one. Default: HOST, else 127.0.0.1.")] = None,
    port: Annotated[int | None, typer.Option(help=(
        "Port to listen on. Default for the api: PORT, else 8000; for a worker role its own: orders 8001, "
        "payments 8002, inventory 8003, shipping 8004, notifications 8005, saga 8006, relay 8007, "
        "projector 8008."
    ))] = None,
    role: Annotated[list[str] | None, typer.Option(metavar="ROLE", help=(
        f"Run only this role; repeat it for several: {', '.join(ROLES)}. Default: every role. "
        "Roles in separate processes need AMQP_URL."
    ))] = None,
    workers: Annotated[int, typer.Option(min=0, help=(
        "Processes serving the api role, sharing the port; 0 for one per core. More than one needs "
        "--role api alone on PostgreSQL."
    ))] = 1,
) -> None:
    settings = load_settings()
    roles = set(role or ROLES)
    unknown = roles - set(ROLES)
    if unknown:
        fail(ExitCode.USAGE, f"--role: no role {', '.join(sorted(unknown))}; choose from {', '.join(ROLES)}")
    if roles != set(ROLES) and not settings.amqp_url:
        fail(ExitCode.USAGE, "--role needs AMQP_URL: the in-process bus cannot reach other processes")
    listen_on = host or settings.host
    if "api" in roles:
        check_exposure(settings, listen_on)
    listen = port or (settings.port if "api" in roles else WORKER_PORTS.get(_health_role(roles), 8000))
    workers = workers or os.cpu_count() or 1
    if workers > 1 and (roles != {"api"} or settings.is_embedded):
        fail(ExitCode.USAGE, "--workers above 1 needs --role api alone, on PostgreSQL (DATABASE_URL)")
    if worker_number() is None:  # a worker's siblings hold the port already
        try:
            check_port(listen_on, listen, choose_with="--port (or PORT)" if "api" in roles else "--port")
        except PortUnavailableError as error:
            fail(ExitCode.FAILED, str(error))
    if workers > 1:
        raise typer.Exit(_serve_in_workers(settings, workers, listen_on, listen))
    with ExitStack() as alone:
        if keeps_data_dir(settings):  # one server to a store, and no `saga reset` under it
            try:
                alone.enter_context(holding(settings.data_dir, "`saga serve`"))
            except StoreInUseError as error:
                fail(ExitCode.FAILED, f"{error}: stop it first, or set another DATA_DIR")
        try:
            worker = worker_number()
            keep_to_cpus(serving_cpus(settings.cpu_affinity, every_role=roles == set(ROLES), worker=worker),
                         index=worker)
        except ValueError as error:
            fail(ExitCode.USAGE, str(error))
        configure_logging(settings.log_level, json=settings.log_format == "json")
        configure_tracing()
        reach_database(settings)
        for database in settings.databases if settings.create_table else ():
            create_schema(database)  # creating the tables creates where they go
        if not run_event_loop(_serve(settings, roles, listen_on, listen)):
            fail(ExitCode.FAILED, "the server did not start; see the log above")


def _serve_in_workers(settings: Settings, workers: int, host: str, port: int) -> int:
    """Create every table once, as `saga migrate` does, then start the workers with CREATE_TABLE=n.

    The workers' event stores create no table of their own, so without this step a
    fresh database leaves them unready for good.
    """
    configure_logging(settings.log_level, json=settings.log_format == "json")
    reach_database(settings)
    if settings.create_table:
        migrate(settings)
        run_event_loop(migrate_read_store(settings))
    return run_workers(workers, host, port)


def _health_role(roles: set[str]) -> str:
    """The role a process without the api names in its health answer, and whose port it takes."""
    return next((r for r in sorted(roles) if r in WORKER_PORTS), sorted(roles)[0])


async def _serve(settings: Settings, roles: set[str], host: str, listen: int) -> bool:
    """Serve until stopped; False when the server did not start."""
    import uvicorn

    from read_api.app import create_app, create_health_app

    await reach_broker(settings)
    # Off the loop: on the embedded default, assembling lists the seed catalogue in its store.
    assembly = await asyncio.to_thread(assemble, settings, roles)
    runtime = Runtime(assembly)
    system = assembly.system
    read_model = await runtime.open_read_side()
    if "api" in roles:
        assert read_model is not None
        web = create_app(ready=_numbered(runtime.check), system=system, read_model=read_model,
                         bus=assembly.bus, settings=settings, lifespan=runtime.lifespan,
                         registry=runtime.metrics.registry, freshness=freshness_of(read_model))
    else:
        web = create_health_app(_health_role(roles), runtime.check, lifespan=runtime.lifespan,
                                registry=runtime.metrics.registry)
    for line in banner(settings, roles, f"http://{host}:{listen}"):
        console.print(line, highlight=False)
    # With JSON logs uvicorn's records go through the root handler like every other line.
    log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    server = uvicorn.Server(uvicorn.Config(web, host=host, port=listen, log_level=settings.log_level.lower(),
                                           log_config=log_config))
    try:
        await server.serve(sockets=None if worker_number() is None else [shared_socket(host, listen)])
        if not server.started:
            await runtime.stop()  # a lifespan that failed to start never stops what it opened
        return server.started
    except SystemExit:  # uvicorn's own exit when it cannot listen, once its lifespan has ended
        return False
    finally:
        system.close()


def _numbered(ready: ReadyCheck) -> ReadyCheck:
    """Readiness that names which of the API's workers answered, when there are several."""
    number = worker_number()
    if number is None:
        return ready

    async def check() -> dict[str, Any]:
        return {**await ready(), "worker": number}

    return check


POSITIONS = ("SELECT projection, application_name, notification_id, xmin::text AS written "
             "FROM projection_tracking")


def freshness_of(read_model: ReadModel) -> Freshness | None:
    """Where the read model stands on PostgreSQL: every tracking row's position and the version of the row.

    A projection commits its rows with its tracking row, so equal positions mean
    equal rows, except where the rows change at a position already seen: a
    rebuild's swap writes the rebuilt rows with the live position unchanged, and
    a reset projection replays up to where it was. Either rewrites the tracking
    row, and every rewrite gives it a new `xmin` (the transaction that wrote it),
    so the version tells those apart. SQLite has no such version: the embedded
    store keeps no answers.
    """
    from infra.readstore.postgres import PostgresStore
    from projections.queries import StoreReadModel

    if not isinstance(read_model, StoreReadModel) or not isinstance(read_model.store, PostgresStore):
        return None
    store = read_model.store

    async def positions() -> Hashable:
        return frozenset(tuple(row.values()) for row in await store.fetch(POSITIONS))

    return positions


def check_exposure(settings: Settings, host: str) -> None:
    """Dev mode trusts every caller, so it listens on loopback only: anywhere else it needs tokens."""
    mode = resolve_mode(settings)
    if mode is AuthMode.DEV and not is_loopback(host):
        fail(ExitCode.USAGE, f"--host {host} is reachable from other machines, and without AUTH_JWT_SECRET "
                             "(or AUTH_JWT_PUBLIC_KEY) every caller would be operator and admin: set "
                             "AUTH_JWT_SECRET to require tokens, or AUTH_MODE=off if a proxy authenticates")

"""The `saga` command line: one function per command, with its help.

What an exit status means, how a failure ends and how the stores are reached are
shared by every command, in infra/cli/base.py.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from datetime import timedelta
from typing import Annotated
from uuid import UUID

import typer
import uvicorn
from rich.table import Column, Table

from commands.audit.timeline import timeline
from domain.base import NotFoundError
from infra.bootstrap import bootstrap, migrate
from infra.cli.base import (
    BAD_ENV,
    BROKER,
    DATABASE,
    NO_BROKER,
    NO_DATABASE,
    NO_STORE,
    ExitCode,
    console,
    exit_codes,
    fail,
    load_settings,
    open_stored_system,
    open_system,
    out,
    paragraphs,
    reach_broker,
    reach_database,
    started_bus,
)
from infra.cli.demo import HELP as DEMO_HELP
from infra.cli.demo import (
    EmptyCatalogueError,
    TokenRefusedError,
    UnreachableError,
    finished_line,
    run_demo,
    summary_table,
)
from infra.cli.ports import PortUnavailableError, check_port
from infra.cli.projections import projections_cli
from infra.cli.reset import EPILOG as RESET_EPILOG
from infra.cli.reset import HELP as RESET_HELP
from infra.cli.reset import reset
from infra.cli.serve_banner import banner
from infra.cli.stores import StoreInUseError, holding, keeps_data_dir
from infra.cli.timeline_table import timeline_table
from infra.eventstore.ddl import create_schema
from infra.messaging.bus import DeadLetter
from infra.messaging.consumers import SAGA_QUEUE
from infra.observability.logs import configure_logging
from infra.observability.tracing import configure_tracing
from infra.readstore.opening import migrate_read_store
from infra.runtime import CONTEXT_ROLES, ROLES, WORKER_PORTS, Runtime, make_bus, run_event_loop
from infra.settings import Settings
from read_api.app import create_app, create_health_app
from read_api.identity import (
    ADMIN,
    CUSTOMER,
    OPERATOR,
    AuthConfigError,
    AuthMode,
    is_loopback,
    mint_token,
    resolve_mode,
)

__all__ = ["ExitCode", "app"]

QUEUES = (*CONTEXT_ROLES, SAGA_QUEUE)

app = typer.Typer(
    name="saga",
    help=paragraphs(
        "Run and operate the event-sourced order system.",
        "Every command reads its configuration from environment variables, or a .env file in the current "
        "directory: DATABASE_URL (PostgreSQL; unset, SQLite files under DATA_DIR, default ./data), AMQP_URL "
        "(RabbitMQ; unset, the in-process bus), the failure rates and the rest of the README's "
        "Configuration table. `saga COMMAND --help` says what each command reads and does.",
        "Start here:\n  saga serve                 the whole system, GraphiQL at http://127.0.0.1:8000/graphql\n"
        "  saga demo --orders 100     in another shell: place orders and see what became of them",
    ),
    epilog=exit_codes(
        "0  done",
        "1  what was asked for went wrong (saga demo: an order not placed or not finished in time)",
        BAD_ENV,
        "3  cannot reach the database, the broker or the API",
        "4  not found: no such order or parked message",
    ),
    no_args_is_help=True,
    add_completion=False,
)


@app.command(
    help=paragraphs(
        "Run the system: every role in one process, or only the roles chosen with --role.",
        "With neither DATABASE_URL nor AMQP_URL this is the embedded default: SQLite files under DATA_DIR "
        "(default ./data), the in-process bus, the seed catalogue listed on the first start, and the API "
        "with GraphiQL at /graphql. With DATABASE_URL (PostgreSQL) and AMQP_URL (RabbitMQ) each role can run "
        "in a process of its own, in as many copies as you like: run `saga migrate` once, then start each "
        "with CREATE_TABLE=n. The api role serves GraphQL, REST, /healthz, /readyz and /metrics; a worker "
        "role serves /api/v1/health and /metrics on its own port. Runs until Ctrl-C or SIGTERM.",
        "Examples:\n  saga serve\n  saga serve --host 0.0.0.0 --port 8080\n"
        "  CREATE_TABLE=n saga serve --role payments --port 8012",
    ),
    epilog=exit_codes(
        "0  stopped by Ctrl-C or SIGTERM", "1  the server did not start (a port in use, ...)",
        "2  an unknown --role, --role without AMQP_URL, or a bad environment variable",
        "3  cannot reach the database (DATABASE_URL) or the broker (AMQP_URL) at start",
    ),
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
    try:
        check_port(listen_on, listen, choose_with="--port (or PORT)" if "api" in roles else "--port")
    except PortUnavailableError as error:
        fail(ExitCode.FAILED, str(error))
    with ExitStack() as alone:
        if keeps_data_dir(settings):  # one server to a store, and no `saga reset` under it
            try:
                alone.enter_context(holding(settings.data_dir, "`saga serve`"))
            except StoreInUseError as error:
                fail(ExitCode.FAILED, f"{error}: stop it first, or set another DATA_DIR")
        configure_logging(settings.log_level, json=settings.log_format == "json")
        configure_tracing()
        reach_database(settings)
        if settings.create_table and settings.postgres is not None:
            create_schema(settings.postgres)  # creating the tables creates where they go
        if not run_event_loop(_serve(settings, roles, listen_on, listen)):
            fail(ExitCode.FAILED, "the server did not start; see the log above")


def _health_role(roles: set[str]) -> str:
    """The role a process without the api names in its health answer, and whose port it takes."""
    return next((r for r in sorted(roles) if r in WORKER_PORTS), sorted(roles)[0])


async def _serve(settings: Settings, roles: set[str], host: str, listen: int) -> bool:
    """Serve until stopped; False when the server did not start."""
    await reach_broker(settings)
    system = bootstrap(settings)
    if settings.is_embedded:
        # The embedded default needs no setup: its first start lists the seed catalogue.
        await asyncio.to_thread(system.inventory.seed)
    bus = make_bus(settings)
    runtime = Runtime(system, bus, roles)
    read_model = await runtime.open_read_side()
    if "api" in roles:
        assert read_model is not None
        web = create_app(ready=runtime.check, system=system, read_model=read_model, bus=bus,
                         settings=settings, lifespan=runtime.lifespan, registry=runtime.metrics.registry)
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
        await server.serve()
        if not server.started:
            await runtime.stop()  # a lifespan that failed to start never stops what it opened
        return server.started
    except SystemExit:  # uvicorn's own exit when it cannot listen, once its lifespan has ended
        return False
    finally:
        system.close()


def check_exposure(settings: Settings, host: str) -> None:
    """Dev mode trusts every caller, so it listens on loopback only: anywhere else it needs tokens."""
    mode = resolve_mode(settings)
    if mode is AuthMode.DEV and not is_loopback(host):
        fail(ExitCode.USAGE, f"--host {host} is reachable from other machines, and without AUTH_JWT_SECRET "
                             "(or AUTH_JWT_PUBLIC_KEY) every caller would be operator and admin: set "
                             "AUTH_JWT_SECRET to require tokens, or AUTH_MODE=off if a proxy authenticates")


@app.command(
    name="migrate",
    help=paragraphs(
        "Create every table once: the event stores' and the read store's; with AMQP_URL, every queue too.",
        "Run it once before starting services with CREATE_TABLE=n, so that replicas never race to create "
        "tables. Tables that exist are left alone, so running it again changes nothing. A database "
        "DATABASE_URL names that does not exist yet is created first (the user needs CREATEDB), and with "
        "DATABASE_URL=postgresql://...?schema=name the schema too. With AMQP_URL (RabbitMQ) it declares "
        "every consumer queue with its retry and dead-letter queues, so the messages for a role started "
        "later wait in its queue. " + DATABASE,
    ),
    epilog=exit_codes("0  the tables (and queues) are ready", BAD_ENV,
                      "3  cannot reach the database (DATABASE_URL), or may not create it; or the broker "
                      "(AMQP_URL)"),
)
def migrate_command() -> None:
    settings = load_settings()
    reach_database(settings, create=True)
    names = migrate(settings)
    console.print(f"event store tables ready for {', '.join(names)}")
    projections = asyncio.run(migrate_read_store(settings))
    console.print(f"read store tables ready for {', '.join(projections)}")
    if settings.amqp_url:
        queues = asyncio.run(_declare_topology(settings))
        console.print(f"broker queues ready for {', '.join(queues)}")


async def _declare_topology(settings: Settings) -> list[str]:
    async with started_bus(settings) as bus:  # ends UNREACHABLE, naming the broker, when it does not answer
        return await bus.declare_topology()


@app.command(
    help=paragraphs(
        "Load the seed catalogue: five products and their stock.",
        "Products already in the catalogue are left alone, so running it again adds nothing. The embedded "
        "`saga serve` seeds on its first start; against PostgreSQL, run it once after `saga migrate`. "
        + DATABASE,
    ),
    epilog=exit_codes("0  the catalogue is listed", BAD_ENV, NO_DATABASE),
)
def seed() -> None:
    with open_system() as system:
        listed = system.inventory.seed()
    console.print(f"seed catalogue: {listed} product(s) listed")


@app.command(
    help=DEMO_HELP,
    epilog=exit_codes(
        "0  every order was placed and reached COMPLETED or CANCELLED (a cancellation is an outcome)",
        "1  some order could not be placed, or was not COMPLETED or CANCELLED within --timeout; "
        "or the API has no products; or it requires a token to place orders and none was given, or the "
        "one given was refused",
        "2  a bad option",
        "3  cannot reach the API at --url, or it did not answer as this system's GraphQL API",
    ),
)
def demo(
    orders: Annotated[int, typer.Option(min=1, help="How many orders to place.")] = 100,
    concurrency: Annotated[int, typer.Option(
        min=1, help="How many placeOrder requests are in flight at a time.")] = 10,
    url: Annotated[str, typer.Option(help="Base URL of the running API (without /graphql).")] = (
        "http://127.0.0.1:8000"),
    timeout: Annotated[float, typer.Option(
        min=0.1, help="Seconds for the whole run, placing and following every order; "
                      "orders not finished by then count as unfinished.")] = 120.0,
    restock: Annotated[bool, typer.Option(
        "--restock", help="When the stock will not cover the run, first restock each product up to what "
                          "the run needs (an admin's mutation; in dev mode every caller is an admin). "
                          "Without it the demo asks on a terminal, and prints a hint otherwise.")] = False,
    token: Annotated[str | None, typer.Option(
        envvar="SAGA_TOKEN", show_default=False,
        help="Bearer token sent on every request where the API requires tokens: an operator's places "
             "orders for random customers, an admin's restocks too (saga token --admin), a customer's "
             "places every order for that customer. Not needed in dev mode.")] = None,
) -> None:
    try:
        summary = asyncio.run(run_demo(url.rstrip("/"), orders, concurrency, timeout, console,
                                       restock=restock, token=token))
    except UnreachableError as error:
        fail(ExitCode.UNREACHABLE, str(error))
    except (EmptyCatalogueError, TokenRefusedError) as error:
        fail(ExitCode.FAILED, str(error))
    out.print(summary_table(summary))
    out.print(finished_line(summary), soft_wrap=True)
    if not summary.all_finished:
        not_placed = summary.orders - summary.placed
        fail(ExitCode.FAILED, f"{summary.unfinished} order(s) not COMPLETED or CANCELLED within --timeout "
                              f"{timeout:g} s, {not_placed} not placed")


def _order_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an order id (a UUID)") from None


@app.command(
    help=paragraphs(
        "Show every event of one order, from all its streams, in the order they were recorded.",
        "The order's stream, its payment, reservation, shipment, notification and saga: one row per event "
        "with its time (UTC), stream, version, type, correlation and causation and a summary; failures in "
        "red, compensations in yellow, the completion in green. Narrower than 140 columns (a pipe counts as "
        "80 unless COLUMNS says otherwise) the table is compact: time and stream, type and summary, cause. "
        "With --json, one JSON object per event on stdout instead, with whole ids. " + DATABASE,
        "Examples:\n  saga audit 0b7e6a52-5d3c-4f0e-9a61-3c1f2e4d5b6a\n"
        "  saga audit 0b7e6a52-5d3c-4f0e-9a61-3c1f2e4d5b6a --json | jq -r .type",
    ),
    epilog=exit_codes("0  the timeline is shown", "2  ORDER_ID is not a UUID, or a bad environment variable",
                      NO_STORE, "4  no order has that id"),
)
def audit(
    order_id: Annotated[UUID, typer.Argument(
        metavar="ORDER_ID", parser=_order_id, show_default=False,
        help="The order's id (a UUID), as placeOrder returned it.")],
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object per event on stdout, for jq and other programs.")] = False,
) -> None:
    with open_stored_system() as system:
        try:
            entries = timeline(system, order_id)
        except NotFoundError as error:
            fail(ExitCode.NOT_FOUND, f"{error.message} (ORDER_ID)")
    if as_json:
        for entry in entries:
            typer.echo(entry.model_dump_json())
        return
    out.print(timeline_table(order_id, entries, out.width))
    console.print(f"{len(entries)} event(s) from {len({e.stream_id for e in entries})} stream(s)")


TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _ttl(value: str) -> timedelta:
    text = value.strip().lower()
    unit = text[-1:] if text[-1:] in TTL_UNITS else "s"
    number = text[:-1] if text[-1:] in TTL_UNITS else text
    if not number.isdigit() or int(number) == 0:
        raise typer.BadParameter(f"{value!r} is not a duration: a whole number, then s, m, h or d (1h, 7d)")
    return timedelta(seconds=int(number) * TTL_UNITS[unit])


@app.command(
    help=paragraphs(
        "Mint a bearer token this API accepts, for local use and scripts.",
        "Signs with AUTH_JWT_SECRET (and AUTH_JWT_ISSUER, AUTH_JWT_AUDIENCE when set) and prints the token "
        "on stdout. Pass it as `Authorization: Bearer <token>`, or in a WebSocket's connection_init payload. "
        "A customer token sees and places only that customer's orders; an operator token sees every order "
        "and the audit and operations views; an admin token is operator and admin.",
        "Examples:\n  saga token --customer 7b0e3c2a-1111-4a55-9c1e-2f3a4b5c6d7e\n"
        "  TOKEN=$(saga token --operator --ttl 8h)\n"
        "  curl -H \"Authorization: Bearer $(saga token --admin)\" http://127.0.0.1:8000/graphql ...",
    ),
    epilog=exit_codes("0  the token is printed",
                      "2  not exactly one of --customer, --operator, --admin; a bad --ttl; or no "
                      "AUTH_JWT_SECRET to sign with"),
)
def token(
    customer: Annotated[str | None, typer.Option(
        metavar="CUSTOMER_ID", help="A customer's token: its id (a UUID) is the token's subject.")] = None,
    operator: Annotated[bool, typer.Option("--operator", help="An operator's token.")] = False,
    admin: Annotated[bool, typer.Option("--admin", help="An admin's token (operator and admin).")] = False,
    ttl: Annotated[str, typer.Option(help="How long it is valid: 90m, 1h, 7d.")] = "1h",
    subject: Annotated[str | None, typer.Option(
        help="The subject of an operator's or admin's token. Default: operator or admin.")] = None,
) -> None:
    if [customer is not None, operator, admin].count(True) != 1:
        fail(ExitCode.USAGE, "give exactly one of --customer ID, --operator, --admin")
    lifetime = _ttl(ttl)
    if customer is not None:
        try:
            subject, scopes = str(UUID(customer)), [CUSTOMER]
        except ValueError:
            fail(ExitCode.USAGE, f"--customer: {customer!r} is not a customer id (a UUID)")
    else:
        scopes = [OPERATOR, ADMIN] if admin else [OPERATOR]
        subject = subject or ("admin" if admin else "operator")
    try:
        minted = mint_token(load_settings(), subject=subject, scopes=scopes, ttl=lifetime)
    except AuthConfigError as error:
        fail(ExitCode.USAGE, f"{error}; set AUTH_JWT_SECRET (the API must have the same one)")
    typer.echo(minted)


dlq = typer.Typer(
    help=paragraphs(
        "List and re-drive parked (dead-lettered) messages.",
        "A message is parked after its last retry, or at once when it cannot be parsed or the domain "
        "refuses it. " + BROKER,
    ),
    no_args_is_help=True,
)
app.add_typer(dlq, name="dlq")


def _queue(value: str | None) -> str | None:
    if value is not None and value not in QUEUES:
        raise typer.BadParameter(f"no queue {value!r}; choose from {', '.join(QUEUES)}")
    return value


@dlq.command(
    name="list",
    help=paragraphs(
        "Show the parked messages with their errors.",
        "Each row gives the id that `saga dlq redrive` takes, the message's type and queue, how many times "
        "it was tried, when it was parked, and the error. " + BROKER,
        "Examples:\n  saga dlq list\n  saga dlq list payments",
    ),
    epilog=exit_codes("0  listed, even when nothing is parked",
                      "2  an unknown QUEUE, or a bad environment variable", NO_BROKER),
)
def dlq_list(
    queue: Annotated[str | None, typer.Argument(
        metavar="QUEUE", callback=_queue, show_default=False,
        help=f"Only this consumer queue: {', '.join(QUEUES)}. Default: every queue.")] = None,
) -> None:
    parked = asyncio.run(_dead_letters(load_settings(), queue))
    if not parked:  # no empty table: the count says it
        console.print(f"0 parked message(s){f' on {queue}' if queue else ''}")
        return
    # The id is what `dlq redrive` takes: whole on one line, even in 80 columns, and the rest beside it.
    table = Table(Column("id", no_wrap=True), Column("parked message", overflow="fold"))
    for letter in parked:
        parked_at = letter.parked_at.isoformat(timespec="seconds")
        table.add_row(letter.id, f"{letter.message_type} on {letter.queue}\n"
                      f"{letter.attempts} attempt(s), parked {parked_at}\n{letter.error}")
    out.print(table)
    console.print(f"{len(parked)} parked message(s)")


@dlq.command(
    name="redrive",
    help=paragraphs(
        "Send one parked message back to its queue, as a first attempt.",
        "The message leaves the parked queue and is delivered again with its attempt count reset, so fix "
        "what made it fail first. " + BROKER,
        "Example:\n  saga dlq redrive payments:0123456789abcdef",
    ),
    epilog=exit_codes("0  sent back", BAD_ENV, NO_BROKER, "4  no parked message has that ID"),
)
def dlq_redrive(
    dead_letter_id: Annotated[str, typer.Argument(
        metavar="ID", show_default=False, help="The parked message's id, as `saga dlq list` shows it.")],
) -> None:
    settings = load_settings()
    queue = dead_letter_id.rpartition(":")[0]
    if queue not in QUEUES or not asyncio.run(_redrive(settings, dead_letter_id)):
        fail(ExitCode.NOT_FOUND, f"no parked message {dead_letter_id} (ID); `saga dlq list` shows them")
    console.print(f"re-driven {dead_letter_id}")


async def _dead_letters(settings: Settings, queue: str | None) -> list[DeadLetter]:
    async with started_bus(settings) as bus:
        return await bus.dead_letters(queue)


async def _redrive(settings: Settings, dead_letter_id: str) -> bool:
    async with started_bus(settings) as bus:
        return await bus.redrive(dead_letter_id)


app.command(name="reset", help=RESET_HELP, epilog=RESET_EPILOG)(reset)
app.add_typer(projections_cli(open_stored_system, epilogs={
    "status": exit_codes("0  shown", BAD_ENV, NO_STORE),
    "rebuild": exit_codes("0  rebuilt and swapped in",
                          "1  another rebuild of the same projection is running",
                          "2  an unknown NAME, or a bad environment variable", NO_STORE),
}), name="projections")

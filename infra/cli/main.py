"""The `saga` command line: one function per command, with its help.

What an exit status means, how a failure ends and how the stores are reached are
shared by every command, in infra/cli/base.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated
from uuid import UUID

import typer

from commands.audit.timeline import timeline
from domain.base import NotFoundError
from infra.bootstrap import migrate
from infra.cli import dlq as dlq_commands
from infra.cli import forget as forget_command
from infra.cli import retry as retry_command
from infra.cli import serve as serve_command
from infra.cli import token as token_command
from infra.cli import verify as verify_command
from infra.cli.base import (
    BAD_ENV,
    DATABASE,
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
from infra.cli.projections import projections_cli
from infra.cli.reset import EPILOG as RESET_EPILOG
from infra.cli.reset import HELP as RESET_HELP
from infra.cli.reset import reset
from infra.cli.timeline_table import timeline_table
from infra.readstore.opening import migrate_read_store
from infra.settings import Settings

__all__ = ["ExitCode", "app"]

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


app.command(help=serve_command.HELP, epilog=serve_command.EPILOG)(serve_command.serve)


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
        "Under the table, one line per stream says whether its hash chain holds (as `saga verify`). "
        "With --json, one JSON object per event on stdout instead, with whole ids, and stream_verified: "
        "whether its stream's chain holds. " + DATABASE,
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
        chains = verify_command.order_chains(system, order_id)
    if as_json:
        for entry in entries:
            report = chains.get(entry.stream_id, ("", None))[1]
            verified = None if report is None else report.verified
            typer.echo(json.dumps({**entry.model_dump(mode="json"), "stream_verified": verified}))
        return
    out.print(timeline_table(order_id, entries, out.width))
    for stream_id, (kind, report) in chains.items():
        if report is not None:
            out.print(verify_command.chain_line(kind, stream_id, report), highlight=False)
    console.print(f"{len(entries)} event(s) from {len({e.stream_id for e in entries})} stream(s)")


app.command(help=token_command.HELP, epilog=token_command.EPILOG)(token_command.token)
app.command(name="verify", help=verify_command.HELP, epilog=verify_command.EPILOG)(
    verify_command.verify_command)
app.command(name="forget", help=forget_command.HELP, epilog=forget_command.EPILOG)(forget_command.forget)
app.command(name="retry", help=retry_command.HELP, epilog=retry_command.EPILOG)(retry_command.retry)
app.add_typer(dlq_commands.dlq, name="dlq")
app.command(name="reset", help=RESET_HELP, epilog=RESET_EPILOG)(reset)


app.add_typer(projections_cli(open_stored_system, epilogs={
    "status": exit_codes("0  shown", BAD_ENV, NO_STORE),
    "rebuild": exit_codes("0  rebuilt and swapped in",
                          "1  another rebuild of the same projection is running",
                          "2  an unknown NAME, or a bad environment variable", NO_STORE),
}), name="projections")

"""The `saga` command line."""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from commands.audit import timeline
from domain.base import NotFoundError
from infra.bootstrap import bootstrap, migrate
from infra.bus import DeadLetter
from infra.demo import HELP as DEMO_HELP
from infra.demo import demo
from infra.logs import configure_logging
from infra.projections_cli import projections_cli
from infra.read_store import migrate_read_store
from infra.runtime import ROLES, WORKER_PORTS, Runtime, make_bus, run_event_loop
from infra.settings import Settings
from infra.timeline_table import timeline_table
from infra.tracing import configure_tracing
from read_api.app import create_app, create_health_app

app = typer.Typer(
    name="saga",
    help="Run and operate the event-sourced order system.",
    no_args_is_help=True,
    add_completion=False,
)
dlq = typer.Typer(help="List and re-drive parked (dead-lettered) messages.", no_args_is_help=True)
app.add_typer(dlq, name="dlq")
app.add_typer(projections_cli(lambda: bootstrap(Settings())), name="projections")
app.command(name="demo", help=DEMO_HELP)(demo)
console = Console(stderr=True)
out = Console()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: 8000, or the worker role's own).")] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(help=f"Run only this role (repeatable): {', '.join(ROLES)}. Default: all."),
    ] = None,
) -> None:
    """Run the system: every role in one process, or the roles chosen with --role."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_format == "json")
    configure_tracing()
    roles = set(role or ROLES)
    unknown = roles - set(ROLES)
    if unknown:
        console.print(f"[red]unknown role {', '.join(sorted(unknown))}[/]; choose from {', '.join(ROLES)}")
        raise typer.Exit(2)
    if roles != set(ROLES) and not settings.amqp_url:
        console.print("[red]--role needs AMQP_URL[/]: the in-process bus cannot reach other processes")
        raise typer.Exit(2)
    run_event_loop(_serve(settings, roles, host or settings.host, port))


async def _serve(settings: Settings, roles: set[str], host: str, port: int | None) -> None:
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
        listen = port or settings.port
    else:
        worker = next((r for r in sorted(roles) if r in WORKER_PORTS), sorted(roles)[0])
        web = create_health_app(worker, runtime.check, lifespan=runtime.lifespan,
                                registry=runtime.metrics.registry)
        listen = port or WORKER_PORTS.get(worker, 8000)
    where = f"embedded, SQLite in {settings.data_dir}" if settings.is_embedded else "PostgreSQL"
    console.print(f"[bold]saga[/] {', '.join(sorted(roles))} on http://{host}:{listen} ({where})")
    if "api" in roles:
        console.print(f"GraphiQL at http://{host}:{listen}/graphql")
    # With JSON logs uvicorn's records go through the root handler like every other line.
    log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    server = uvicorn.Server(uvicorn.Config(web, host=host, port=listen, log_level=settings.log_level.lower(),
                                           log_config=log_config))
    try:
        await server.serve()
    finally:
        system.close()


@app.command(name="migrate")
def migrate_command() -> None:
    """Create every table once (event stores, read store); services then start with CREATE_TABLE=n."""
    settings = Settings()
    names = migrate(settings)
    console.print(f"event store tables ready for {', '.join(names)}")
    projections = asyncio.run(migrate_read_store(settings))
    console.print(f"read store tables ready for {', '.join(projections)}")


@app.command()
def seed() -> None:
    """Load the seed catalogue (idempotent: products already listed are left alone)."""
    with bootstrap(Settings()) as system:
        listed = system.inventory.seed()
    console.print(f"seed catalogue: {listed} product(s) listed")


@app.command()
def audit(
    order_id: Annotated[
        str, typer.Argument(metavar="ORDER_ID", help="The order's id, as placeOrder returned it.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per event, for machines.")] = False,
) -> None:
    """Show every event of one order, from all its streams, in the order they were recorded."""
    order = _parse_order_id(order_id)
    with bootstrap(Settings()) as system:
        try:
            entries = timeline(system, order)
        except NotFoundError as error:
            console.print(f"[red]ORDER_ID: {escape(error.message)}[/]")
            raise typer.Exit(1) from None
    if as_json:
        for entry in entries:
            typer.echo(entry.model_dump_json())
        return
    out.print(timeline_table(order, entries))
    console.print(f"{len(entries)} event(s) from {len({e.stream_id for e in entries})} stream(s)")


def _parse_order_id(order_id: str) -> UUID:
    try:
        return UUID(order_id)
    except ValueError:
        console.print(f"[red]ORDER_ID: {escape(repr(order_id))} is not an order id[/] (a UUID)")
        raise typer.Exit(1) from None


@dlq.command(name="list")
def dlq_list(queue: Annotated[str | None, typer.Argument(help="Only this consumer's queue.")] = None) -> None:
    """Show the parked messages with their errors."""
    parked = asyncio.run(_dead_letters(queue))
    # The id is what `dlq redrive` takes: whole on one line, even in 80 columns, and the rest beside it.
    table = Table(Column("id", no_wrap=True), Column("parked message", overflow="fold"))
    for letter in parked:
        parked_at = letter.parked_at.isoformat(timespec="seconds")
        table.add_row(letter.id, f"{letter.message_type} on {letter.queue}\n"
                      f"{letter.attempts} attempt(s), parked {parked_at}\n{letter.error}")
    out.print(table)
    console.print(f"{len(parked)} parked message(s)")


@dlq.command(name="redrive")
def dlq_redrive(
    dead_letter_id: Annotated[str, typer.Argument(help="The id shown by `saga dlq list`.")],
) -> None:
    """Send one parked message back to its queue, as a first attempt."""
    if not asyncio.run(_redrive(dead_letter_id)):
        console.print(f"[red]no parked message {dead_letter_id}[/]")
        raise typer.Exit(1)
    console.print(f"re-driven {dead_letter_id}")


async def _dead_letters(queue: str | None) -> list[DeadLetter]:
    bus = make_bus(Settings())
    await bus.start()
    try:
        return await bus.dead_letters(queue)
    finally:
        await bus.close()


async def _redrive(dead_letter_id: str) -> bool:
    bus = make_bus(Settings())
    await bus.start()
    try:
        return await bus.redrive(dead_letter_id)
    finally:
        await bus.close()


if __name__ == "__main__":
    app()

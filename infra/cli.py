"""The `saga` command line."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from infra.bootstrap import bootstrap, migrate
from infra.settings import Settings
from read_api.app import create_app

app = typer.Typer(
    name="saga",
    help="Run and operate the event-sourced order system.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the API.")] = None,
) -> None:
    """Run the system: every role in one process, with the API on HOST:PORT."""
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper())
    system = bootstrap(settings)
    if settings.is_embedded:
        # The embedded default needs no setup: its first start lists the seed catalogue.
        system.inventory.seed()
    where = f"embedded, SQLite in {settings.data_dir}" if settings.is_embedded else "PostgreSQL"
    address = f"http://{host or settings.host}:{port or settings.port}"
    console.print(f"[bold]saga[/] serving on {address} ({where})")
    try:
        uvicorn.run(
            create_app(ready=system.check),
            host=host or settings.host,
            port=port or settings.port,
            log_level=settings.log_level.lower(),
        )
    finally:
        system.close()


@app.command(name="migrate")
def migrate_command() -> None:
    """Create the event store's tables once, before services start with CREATE_TABLE=n."""
    names = migrate(Settings())
    console.print(f"tables ready for {', '.join(names)}")


@app.command()
def seed() -> None:
    """Load the seed catalogue (idempotent: products already listed are left alone)."""
    with bootstrap(Settings()) as system:
        listed = system.inventory.seed()
    console.print(f"seed catalogue: {listed} product(s) listed")


if __name__ == "__main__":
    app()

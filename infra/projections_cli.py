"""`saga projections rebuild [NAME]` and `saga projections status`.

The commands do not build the system themselves: whoever mounts them passes a
function that does, so the composition root stays in one place.

    app.add_typer(projections_cli(lambda: bootstrap(Settings())), name="projections")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.bootstrap import System
from infra.read_store import read_store_opener
from projections.catalog import all_projections
from projections.read_model import ProjectionStatusRow
from projections.rebuild import rebuild
from projections.runner import Projector

# Module level: typer reads the annotations (and so this help text) by name.
NAMES = ", ".join(p.name for p in all_projections())


def projections_cli(open_system: Callable[[], System]) -> typer.Typer:
    """The `projections` commands, building the system with `open_system` when one runs."""
    cli = typer.Typer(help="Rebuild read models and see how far behind they are.", no_args_is_help=True)
    console, out = Console(stderr=True), Console()

    @cli.command(name="rebuild")
    def rebuild_command(
        name: Annotated[str | None, typer.Argument(help=f"One projection: {NAMES}. Default: all.")] = None,
    ) -> None:
        """Replay the event stores into new tables, then swap them in; readers see the old ones until then."""
        if name is not None and name not in NAMES.split(", "):
            console.print(f"[red]no projection {name}[/]; choose from {NAMES}")
            raise typer.Exit(2)
        system = open_system()
        try:
            rebuilt = asyncio.run(_rebuild(system, name, console))
        finally:
            system.close()
        console.print(f"rebuilt and swapped in: {', '.join(rebuilt)}")

    @cli.command(name="status")
    def status_command() -> None:
        """Each projection's position and lag (events recorded but not yet projected)."""
        system = open_system()
        try:
            report = asyncio.run(_status(system))
        finally:
            system.close()
        table = Table("projection", "position", "lag", "parked events")
        for row in report:
            table.add_row(row.name, str(row.position), str(row.lag), str(row.failed))
        out.print(table)

    return cli


def _projector(system: System) -> Projector:
    # Rebuild and status follow nothing live, so they need no news of saves elsewhere.
    return Projector(system, store=read_store_opener(system.settings))


async def _rebuild(system: System, name: str | None, console: Console) -> list[str]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(projection: str, done: int, total: int) -> None:
            if projection not in tasks:
                tasks[projection] = bar.add_task(projection, total=total)
            bar.update(tasks[projection], completed=done, total=total)

        async with _projector(system) as projector:
            return await rebuild(projector, None if name is None else [name], progress=advance)


async def _status(system: System) -> list[ProjectionStatusRow]:
    async with _projector(system) as projector:
        return await projector.read_model().projection_status()

"""`saga projections rebuild [NAME]` and `saga projections status`.

The commands do not build the system themselves: whoever mounts them passes a
function that does, so the composition root stays in one place, and the text
of each command's exit codes, which the mounting command line defines.

    app.add_typer(projections_cli(open_system, epilogs={"status": "Exit codes: ..."}), name="projections")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from infra.bootstrap import System, projector
from infra.parallel_rebuild import default_jobs, rebuild_projections
from infra.settings import Settings
from projections.catalog import all_projections
from projections.read_model import ProjectionStatusRow
from projections.rebuild import RebuildConflictError

# Module level: typer reads the annotations (and so this help text) by name.
NAMES = ", ".join(p.name for p in all_projections())
STORES = ("Reads DATABASE_URL (PostgreSQL: the event stores, and the read store beside them); unset, the "
          "SQLite files under DATA_DIR (default ./data).")


def _known(name: str | None) -> str | None:
    if name is not None and name not in NAMES.split(", "):
        raise typer.BadParameter(f"no projection {name!r}; choose from {NAMES}")
    return name


def projections_cli(
    open_system: Callable[[], System], epilogs: Mapping[str, str] | None = None
) -> typer.Typer:
    """The `projections` commands, building the system with `open_system` when one runs.

    `epilogs`: each command's (`status`, `rebuild`) help epilog, saying what its exit codes mean.
    """
    epilogs = epilogs or {}
    cli = typer.Typer(help=(
        "Rebuild read models and see how far behind they are.\n\n"
        "The read models (the tables GraphQL and REST answer from) follow each application's events; "
        f"these commands read where each one is and replay them from the start. {STORES}"
    ), no_args_is_help=True)
    console, out = Console(stderr=True), Console()

    @cli.command(name="rebuild", epilog=epilogs.get("rebuild"), help=(
        "Replay the event stores into new tables, then swap them in at once.\n\n"
        "The live tables go on serving readers and following new events until the swap, so a rebuild can "
        "run beside a running system; readers see the old rows or the new ones, never a mix. A progress "
        "bar counts the events replayed for each projection. Use it after changing how a projection reads "
        f"its events. {STORES}\n\n"
        "Examples:\n  saga projections rebuild\n  saga projections rebuild order_summary\n"
        "  saga projections rebuild --jobs 1"
    ))
    def rebuild_command(
        name: Annotated[str | None, typer.Argument(
            metavar="NAME", callback=_known, show_default=False,
            help=f"Only this projection: {NAMES}. Default: every one.")] = None,
        jobs: Annotated[int | None, typer.Option(
            "--jobs", "-j", min=1, show_default=False,
            help="Worker processes, each rebuilding one projection at a time, the largest first. "
                 "Default: one per core, up to 4.")] = None,
    ) -> None:
        with open_system() as system:
            settings = system.settings
        try:
            rebuilt = _rebuild(settings, name, jobs or default_jobs(), console)
        except RebuildConflictError as error:
            console.print(f"[red]error:[/] {error}", highlight=False)
            raise typer.Exit(1) from None
        console.print(f"rebuilt and swapped in: {', '.join(rebuilt)}")

    @cli.command(name="status", epilog=epilogs.get("status"), help=(
        "Show each projection's position, lag and parked events.\n\n"
        "position: the last event it applied in each application's log it follows, summed; lag: events "
        "recorded but not yet applied (0 when it is up to date); parked events: events it could not apply, "
        "set aside and logged while it carried on with the others. "
        f"{STORES}"
    ))
    def status_command() -> None:
        system = open_system()
        try:
            report = asyncio.run(_status(system))
        finally:
            system.close()
        counts = (Column(name, justify="right") for name in ("position", "lag", "parked events"))
        table = Table("projection", *counts)
        for row in report:
            table.add_row(row.name, str(row.position), str(row.lag), str(row.failed))
        out.print(table)

    return cli


def _rebuild(settings: Settings, name: str | None, jobs: int, console: Console) -> list[str]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # Redrawn as the workers report rather than by a thread of its own: with no other thread
    # running, the workers can be forked (`start_method`).
    with Progress(*columns, console=console, auto_refresh=False) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(projection: str, done: int, total: int) -> None:
            if projection not in tasks:
                tasks[projection] = bar.add_task(projection, total=total)
            bar.update(tasks[projection], completed=done, total=total, refresh=True)

        return rebuild_projections(settings, None if name is None else [name], jobs=jobs, progress=advance)


async def _status(system: System) -> list[ProjectionStatusRow]:
    # Status follows nothing live, so it needs no news of saves elsewhere.
    async with projector(system) as replaying:
        return await replaying.read_model().projection_status()

"""`saga reset`: start afresh on the embedded default, deleting its stores under DATA_DIR.

For development only: it refuses PostgreSQL, DATABASE_URL's or a context's own
(`<CONTEXT>_DATABASE_URL`), whose owner drops a database or a schema on purpose, not
by a command meant for a laptop; and it refuses any authentication mode but dev (a
system that checks tokens has callers whose orders matter). It never deletes under a
running `saga serve`: it holds the lock the server holds while it runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from infra.cli.base import ExitCode, console, exit_codes, fail, load_settings, paragraphs
from infra.cli.stores import StoreInUseError, holding, stored_files
from infra.settings import PostgresDsn, Settings
from read_api.identity import AuthMode, resolve_mode

HELP = paragraphs(
    "Start afresh: delete every order, event and read model of the embedded default.",
    "Deletes the SQLite stores and the in-process bus's queues in DATA_DIR (default ./data) after asking; "
    "the next `saga serve` starts empty and lists the seed catalogue again. For development only: refused "
    "with DATABASE_URL or a <CONTEXT>_DATABASE_URL (PostgreSQL: drop the database or its schema instead), "
    "and unless AUTH_MODE resolves to dev (no AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY). Refused while a "
    "`saga serve` uses DATA_DIR.",
    "Examples:\n  saga reset\n  saga reset --yes",
)
EPILOG = exit_codes(
    "0  deleted, or there was nothing to delete",
    "1  answered no, so nothing was deleted; or a `saga serve` is using DATA_DIR",
    "2  a database is PostgreSQL, AUTH_MODE is not dev, or a bad environment variable",
)
# Typer reads the annotations by name, so the option's help is a module-level constant.
YES = "Delete without asking, for scripts."


def reset(yes: Annotated[bool, typer.Option("--yes", "-y", help=YES)] = False) -> None:
    settings = load_settings()
    refuse_outside_development(settings)
    data_dir = settings.data_dir.absolute()
    if not stored_files(data_dir):
        console.print(f"nothing to delete in {data_dir} (DATA_DIR)", highlight=False)
        return
    try:
        with holding(data_dir, "`saga reset`"):
            if not (yes or _confirmed(f"Delete every order, event and read model in {data_dir}?")):
                console.print(f"nothing was deleted in {data_dir}", highlight=False)
                raise typer.Exit(ExitCode.FAILED)
            deleted = stored_files(data_dir)
            for path in deleted:
                path.unlink(missing_ok=True)
    except StoreInUseError as error:
        fail(ExitCode.FAILED, f"{error}: stop it first, then reset")
    console.print(f"deleted {len(deleted)} file(s) in {data_dir}: the next `saga serve` starts afresh, "
                  "with the seed catalogue", highlight=False)


def refuse_outside_development(settings: Settings) -> None:
    """Fail with USAGE unless this is the embedded default in dev mode."""
    if databases := settings.databases:
        variables = list(dict.fromkeys(v for names in databases.values() for v in names))
        drops = ", and ".join(_drop(dsn) for dsn in databases)
        fail(ExitCode.USAGE, f"saga reset deletes the embedded SQLite store only, and {', '.join(variables)} "
                             f"{'is' if len(variables) == 1 else 'are'} PostgreSQL: drop {drops} instead, "
                             "then run `saga migrate`")
    mode = resolve_mode(settings)
    if mode is not AuthMode.DEV:
        fail(ExitCode.USAGE, f"saga reset is for development, and AUTH_MODE resolves to {mode.value} here: "
                             "it runs only in dev mode (AUTH_MODE unset or dev, without AUTH_JWT_SECRET or "
                             "AUTH_JWT_PUBLIC_KEY)")


def _drop(dsn: PostgresDsn) -> str:
    where = f"database {dsn.dbname} on {dsn.host}:{dsn.port}"
    if dsn.schema_name:
        return f"the schema {dsn.schema_name} in the {where} (DROP SCHEMA {dsn.schema_name} CASCADE)"
    return f"the {where} (DROP DATABASE {dsn.dbname})"


def _confirmed(question: str) -> bool:
    try:
        return typer.confirm(question, default=False)
    except typer.Abort:  # Ctrl-C, or no answer to read (stdin closed)
        console.print()
        return False

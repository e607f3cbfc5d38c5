"""What `saga serve` says when it starts: where it listens, where its data is, who may call it.

One short line for each, so that the banner reads in an 80-column terminal and in a log
file alike; rich wraps a longer one (a deep DATA_DIR) at its words.
"""

from __future__ import annotations

from collections.abc import Collection

from rich.markup import escape

from infra.runtime import ROLES
from infra.settings import Settings
from read_api.identity import AuthMode, resolve_mode


def banner(settings: Settings, roles: Collection[str], base: str) -> list[str]:
    """The start banner's lines, in rich markup, for a server at `base` (http://host:port)."""
    playing = "every role" if set(roles) == set(ROLES) else f"roles: {', '.join(sorted(roles))}"
    databases = sorted({f"{dsn.dbname} on {dsn.host}:{dsn.port}" for dsn in settings.databases})
    stores = (f"PostgreSQL, database{'s' if len(databases) > 1 else ''} {', '.join(databases)}" if databases
              else f"SQLite in {settings.data_dir.absolute()} (DATA_DIR)")
    lines = [f"[bold]saga[/] serving on {base} ({playing})", f"stores: {escape(stores)}"]
    return [*lines, *auth_banner(settings, base)] if "api" in roles else lines


def auth_banner(settings: Settings, base: str) -> list[str]:
    """Where GraphQL is, and how the API lets callers in: dev mode's trust said plainly."""
    mode = resolve_mode(settings)
    introspection = settings.graphql_introspection
    ide = (mode is not AuthMode.REQUIRED) if introspection is None else introspection
    where = f"GraphiQL at {base}/graphql" if ide else f"GraphQL at {base}/graphql (GraphiQL off)"
    if mode is AuthMode.DEV:
        return [where, "auth: dev, every caller is operator and admin (loopback only)"]
    if mode is AuthMode.OFF:
        return [where, "[yellow]auth: off, every caller is operator and admin:[/]",
                "[yellow]serve it only behind a proxy that authenticates[/]"]
    return [where, "auth: required, bearer tokens (`saga token --help`)"]

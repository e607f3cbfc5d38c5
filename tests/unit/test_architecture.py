"""The dependency rule, walked over the imports of every module.

The domain stays pure, the read side (projections, read_api) reaches no driver,
and only the composition root knows infra.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Database and broker clients: only infra (and tests, bench) may talk to a server or a file.
STORE_DRIVERS = {"asyncpg", "aiosqlite", "psycopg", "psycopg2", "psycopg_pool", "sqlite3", "sqlalchemy",
                 "aio_pika", "aiormq", "pika", "redis"}
# eventsourcing's own persistence modules for a database, which import its driver.
STORE_MODULES = {"eventsourcing.postgres", "eventsourcing.sqlite"}
# Web and command-line frameworks: the API's and the CLI's business, nobody else's.
FRAMEWORKS = {"fastapi", "strawberry", "uvicorn", "starlette", "httpx", "typer", "click", "rich"}
DRIVERS = STORE_DRIVERS | FRAMEWORKS
PROJECT = {"domain", "commands", "process_managers", "projections", "read_api", "infra"}


def imports_in(source: str, name: str) -> list[tuple[str, str]]:
    """(file name, module) for every absolute import in `source`, at any depth (inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Import):
            found += [(name, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((name, node.module))
    return found


def imported_modules(folder: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        found += imports_in(path.read_text(), path.name)
    return found


def top(module: str) -> str:
    return module.split(".")[0]


def reaches_a_store(module: str) -> bool:
    in_store_module = any(module == m or module.startswith(f"{m}.") for m in STORE_MODULES)
    return top(module) in STORE_DRIVERS or in_store_module


def allowed_in_domain(module: str) -> bool:
    if top(module) in DRIVERS:
        return False
    return (
        (top(module) in sys.stdlib_module_names)
        or top(module) in ("domain", "pydantic", "pydantic_core")
        or module == "eventsourcing.domain"
    )


def forbidden_in_projections(module: str) -> bool:
    return reaches_a_store(module) or top(module) in FRAMEWORKS | {"infra", "read_api"}


def allowed_in_projections(module: str) -> bool:
    if forbidden_in_projections(module):
        return False
    return (
        (top(module) in sys.stdlib_module_names)
        or top(module) in ("domain", "projections", "pydantic", "pydantic_core", "orjson")
        or module in ("eventsourcing.utils", "eventsourcing.persistence")
    )


def test_the_domain_imports_only_the_standard_library_pydantic_and_eventsourcing_domain() -> None:
    imports = imported_modules("domain")
    assert imports, "the walk found no imports at all; is the path right?"
    offending = [(f, m) for f, m in imports if not allowed_in_domain(m)]
    assert offending == []


@pytest.mark.parametrize("folder", ["domain", "commands", "process_managers", "projections", "read_api"])
def test_nothing_but_the_composition_root_imports_infra(folder: str) -> None:
    offending = [(f, m) for f, m in imported_modules(folder) if top(m) == "infra"]
    assert offending == []


def test_commands_reach_no_driver_and_no_outer_layer() -> None:
    outer = DRIVERS | {"read_api", "projections", "process_managers", "infra"}
    offending = [(f, m) for f, m in imported_modules("commands") if top(m) in outer]
    assert offending == []


def test_projections_reach_no_driver_no_web_or_cli_framework_and_no_infra() -> None:
    imports = imported_modules("projections")
    assert imports, "the walk found no imports at all; is the path right?"
    offending = [(f, m) for f, m in imports if forbidden_in_projections(m)]
    assert offending == []


def test_projections_import_only_the_domain_the_standard_library_and_their_few_libraries() -> None:
    offending = [(f, m) for f, m in imported_modules("projections") if not allowed_in_projections(m)]
    assert offending == []


def test_the_read_api_reaches_no_driver() -> None:
    imports = imported_modules("read_api")
    assert imports, "the walk found no imports at all; is the path right?"
    offending = [(f, m) for f, m in imports if reaches_a_store(m)]
    assert offending == []


def test_the_walk_sees_a_forbidden_import() -> None:
    # Guards the guard: a domain module importing a driver must be caught.
    assert not allowed_in_domain("psycopg")
    assert not allowed_in_domain("infra.settings")
    assert not allowed_in_domain("eventsourcing.postgres")
    assert allowed_in_domain("eventsourcing.domain")


@pytest.mark.parametrize("source", [
    "import asyncpg",
    "import aiosqlite as sqlite",
    "import sqlite3",
    "from psycopg import sql",
    "from aio_pika import Message",
    "from eventsourcing.postgres import PostgresDatastore",
    "from infra.readstore.opening import open_read_store",
    "import typer",
    "from rich.table import Table",
    "from fastapi import FastAPI",
    "import strawberry",
    "async def open_it() -> None:\n    from aiosqlite import connect\n",
])
def test_the_walk_sees_a_driver_framework_or_infra_imported_in_projections(source: str) -> None:
    imports = imports_in(source, "store.py")
    assert imports
    assert all(forbidden_in_projections(m) and not allowed_in_projections(m) for _, m in imports)


def test_the_walk_lets_projections_import_what_they_need() -> None:
    source = "import orjson\nfrom eventsourcing.utils import get_topic\nfrom domain.order import Order\n"
    assert all(allowed_in_projections(m) for _, m in imports_in(source, "order_summary.py"))

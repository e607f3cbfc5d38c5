"""The dependency rule: the domain stays pure, and only the composition root knows infra."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVERS = {"asyncpg", "aio_pika", "aiormq", "psycopg", "psycopg_pool", "sqlite3", "fastapi",
           "strawberry", "uvicorn", "starlette", "httpx"}
PROJECT = {"domain", "commands", "process_managers", "projections", "read_api", "infra"}


def imported_modules(folder: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path.name, node.module))
    return found


def allowed_in_domain(module: str) -> bool:
    top = module.split(".")[0]
    if top in DRIVERS:
        return False
    return (
        (top in sys.stdlib_module_names)
        or top in ("domain", "pydantic", "pydantic_core")
        or module == "eventsourcing.domain"
    )


def test_the_domain_imports_only_the_standard_library_pydantic_and_eventsourcing_domain() -> None:
    imports = imported_modules("domain")
    assert imports, "the walk found no imports at all; is the path right?"
    offending = [(f, m) for f, m in imports if not allowed_in_domain(m)]
    assert offending == []


@pytest.mark.parametrize("folder", ["domain", "commands", "process_managers", "projections", "read_api"])
def test_nothing_but_the_composition_root_imports_infra(folder: str) -> None:
    offending = [(f, m) for f, m in imported_modules(folder) if m.split(".")[0] == "infra"]
    assert offending == []


def test_commands_reach_no_driver_and_no_outer_layer() -> None:
    outer = DRIVERS | {"read_api", "projections", "process_managers", "infra"}
    offending = [(f, m) for f, m in imported_modules("commands") if m.split(".")[0] in outer]
    assert offending == []


def test_the_walk_sees_a_forbidden_import() -> None:
    # Guards the guard: a domain module importing a driver must be caught.
    assert not allowed_in_domain("psycopg")
    assert not allowed_in_domain("infra.settings")
    assert not allowed_in_domain("eventsourcing.postgres")
    assert allowed_in_domain("eventsourcing.domain")

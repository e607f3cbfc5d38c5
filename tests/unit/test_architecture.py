"""The dependency rule of DESIGN section 1.

The rules are import-linter contracts in pyproject.toml (`[tool.importlinter]`): `make lint` runs them, and
so does this module, so that pytest alone fails on a broken rule. Each contract is shown a planted import it
exists to forbid, in a copy of the code, and must break on it. The one rule import-linter cannot state, the
short allow-list of libraries for the domain and the projections, is checked here on its import graph.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = [contract["name"] for contract in CONFIG["contracts"]]
PROJECT = ("domain", "commands", "process_managers", "projections", "read_api", "infra")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# One import (or more) per contract that the contract exists to forbid: (contract, planted module, source).
PLANTED = [
    ("Layers: infra > read_api > process_managers | projections > commands > domain",
     "commands/_planted.py", "from process_managers.saga import OrderFulfillment\n"),
    ("Layers: infra > read_api > process_managers | projections > commands > domain",
     "projections/_planted.py", "from infra.readstore.opening import read_store_opener\n"),
    ("domain reaches no store driver, store module or framework",
     "domain/_planted.py", "from eventsourcing.postgres import PostgresDatastore\n"),
    ("domain reaches no store driver, store module or framework",
     "domain/_planted.py", "import sqlite3\n"),
    ("domain reaches no store driver, store module or framework",
     "domain/_planted.py", "from pydantic import BaseModel\nimport psycopg\n"),
    ("commands reach no store driver, store module or framework",
     "commands/_planted.py", "import asyncpg\n"),
    ("process_managers reach no store driver, store module or framework",
     "process_managers/_planted.py", "from aio_pika import Message\n"),
    ("projections import only domain",
     "projections/_planted.py", "from commands.orders import PlaceOrder\n"),
    ("projections reach no store driver, store module or framework",
     "projections/_planted.py", "async def open_it() -> None:\n    from aiosqlite import connect\n"),
    ("projections reach no store driver, store module or framework",
     "projections/_planted.py", "from rich.table import Table\n"),
    ("read_api reaches no store driver or store module",
     "read_api/_planted.py", "from eventsourcing.sqlite import SQLiteDatastore\n"),
    ("read_api reads projections only through projections.read_model",
     "read_api/_planted.py", "from projections.runner import Projector\n"),
    ("read_api imports nothing of process_managers",
     "read_api/_planted.py", "from process_managers import policy\n"),
    ("only infra.cli imports infra.cli",
     "infra/readstore/_planted.py", "from infra.cli import base\n"),
    ("only what runs the system imports the composition root",
     "infra/messaging/_planted.py", "from infra.bootstrap import assemble\n"),
    ("infra.observability imports no other infra sub-package, but the bus's port",
     "infra/observability/_planted.py", "from infra.readstore import opening\n"),
    ("infra.messaging imports no infra.readstore or infra.cli",
     "infra/messaging/_planted.py", "from infra.readstore import opening\n"),
    ("infra.eventstore imports no infra.messaging, infra.readstore or infra.cli",
     "infra/eventstore/_planted.py", "from infra.messaging import bus\n"),
]

# Libraries (top-level names; eventsourcing by module) beyond the standard library that a folder may import.
DOMAIN_LIBRARIES = {"pydantic", "pydantic_core", "eventsourcing.domain"}
PROJECTION_LIBRARIES = {
    "pydantic", "pydantic_core", "orjson", "eventsourcing.utils", "eventsourcing.persistence",
}


def lint_imports(cwd: Path) -> str:
    """Runs lint-imports in `cwd` and returns its report, one contract per line, however long its name."""
    env = {**os.environ, "COLUMNS": "1000", "NO_COLOR": "1"}
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, check=False,
    )
    return result.stdout + result.stderr + f"\nexit status {result.returncode}"


def verdict(report: str, contract: str) -> str | None:
    found = re.search(rf"^{re.escape(contract)}\s+(KEPT|BROKEN)\b", report, re.MULTILINE)
    return found.group(1) if found else None


def test_every_import_contract_is_kept() -> None:
    report = lint_imports(ROOT)
    assert [verdict(report, name) for name in CONTRACTS] == ["KEPT"] * len(CONTRACTS), report
    assert report.endswith("exit status 0"), report


def test_the_contracts_cover_every_rule_of_the_design() -> None:
    assert len(CONTRACTS) >= 13
    assert {name for name, _, _ in PLANTED} == set(CONTRACTS), "every contract needs a planted import"


@pytest.fixture(scope="module")
def copy_of_the_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("code")
    shutil.copy(ROOT / "pyproject.toml", copy)
    for package in PROJECT:
        shutil.copytree(ROOT / package, copy / package,
                        ignore=shutil.ignore_patterns("__pycache__", "static", "*.html"))
    return copy


@pytest.fixture
def plant(copy_of_the_code: Path) -> Iterator[Path]:
    yield copy_of_the_code
    for path in copy_of_the_code.rglob("_planted.py"):
        path.unlink()


@pytest.mark.parametrize(("contract", "module", "source"), PLANTED)
def test_a_contract_breaks_on_the_import_it_forbids(
    plant: Path, contract: str, module: str, source: str,
) -> None:
    (plant / module).write_text(f"from __future__ import annotations\n\n{source}")
    report = lint_imports(plant)
    planted_module = module.removesuffix(".py").replace("/", ".")
    assert verdict(report, contract) == "BROKEN", report
    assert planted_module in report, report
    assert not report.endswith("exit status 0")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*CONFIG["root_packages"], include_external_packages=True)


def libraries_imported_by(graph: grimp.ImportGraph, package: str) -> set[str]:
    """What `package` imports from outside the project: top-level names, eventsourcing by module."""
    imported: set[str] = set()
    for module in graph.find_descendants(package) | {package}:
        imported |= graph.find_modules_directly_imported_by(module)
    return {name for name in imported if name.split(".")[0] not in PROJECT}


def not_allowed(libraries: set[str], allowed: set[str]) -> set[str]:
    return {name for name in libraries if name not in sys.stdlib_module_names and name not in allowed}


def test_the_domain_imports_only_the_standard_library_pydantic_and_eventsourcing_domain(
    graph: grimp.ImportGraph,
) -> None:
    libraries = libraries_imported_by(graph, "domain")
    assert {"pydantic", "eventsourcing.domain", "uuid"} <= libraries, "the graph sees no library at all"
    assert not_allowed(libraries, DOMAIN_LIBRARIES) == set()


def test_projections_import_only_the_standard_library_and_their_few_libraries(
    graph: grimp.ImportGraph,
) -> None:
    libraries = libraries_imported_by(graph, "projections")
    assert {"orjson", "eventsourcing.utils"} <= libraries, "the graph sees no library at all"
    assert not_allowed(libraries, PROJECTION_LIBRARIES) == set()


def test_the_allow_list_refuses_what_it_does_not_name() -> None:
    libraries = {"collections", "pydantic", "eventsourcing.domain", "eventsourcing.persistence", "orjson",
                 "prometheus_client"}
    assert not_allowed(libraries, DOMAIN_LIBRARIES) == {
        "eventsourcing.persistence", "orjson", "prometheus_client",
    }
    assert not_allowed(libraries, PROJECTION_LIBRARIES) == {"eventsourcing.domain", "prometheus_client"}

"""What `saga` says about its commands, and its usage errors: nothing is read or written."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from typer.testing import CliRunner, Result

from infra.cli.main import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}  # help and messages on one line each, as in a wide terminal


def saga(*args: str) -> Result:
    return runner.invoke(app, list(args), env=WIDE)


@pytest.mark.parametrize(("command", "names"), [
    (["serve"], ["--host", "--port", "--role", "DATABASE_URL", "AMQP_URL", "Examples:"]),
    (["migrate"], ["CREATE_TABLE=n", "DATABASE_URL", "DATA_DIR"]),
    (["seed"], ["DATABASE_URL", "DATA_DIR"]),
    (["demo"], ["--orders", "--concurrency", "--url", "--timeout", "default: 100", "p95", "Example:"]),
    (["audit"], ["ORDER_ID", "--json", "DATABASE_URL", "Examples:"]),
    (["dlq", "list"], ["QUEUE", "payments", "AMQP_URL", "DATA_DIR/bus.sqlite"]),
    (["dlq", "redrive"], ["ID", "saga dlq list", "AMQP_URL", "Example:"]),
    (["projections", "status"], ["lag", "parked events", "DATABASE_URL"]),
    (["projections", "rebuild"], ["NAME", "order_summary", "DATABASE_URL", "Examples:"]),
    (["reset"], ["--yes", "DATA_DIR", "DATABASE_URL", "AUTH_MODE", "saga serve", "Examples:"]),
    (["retry"], ["ORDER_ID", "--yes", "--by", "NEEDS_ATTENTION", "COMPENSATION_ATTEMPTS", "DATABASE_URL",
                 "Examples:"]),
])
def test_every_command_explains_itself_and_its_exit_statuses(command: list[str], names: list[str]) -> None:
    result = saga(*command, "--help")

    assert result.exit_code == 0, result.output
    for name in [*names, "Exit codes:", "0  "]:
        assert name in result.output, f"saga {' '.join(command)} --help does not mention {name}"


def test_audit_of_something_that_is_not_an_order_id_is_a_usage_error_naming_the_argument() -> None:
    result = saga("audit", "not-a-uuid")

    assert result.exit_code == 2
    assert "'ORDER_ID': 'not-a-uuid' is not an order id" in result.stderr
    assert result.stdout == ""


def test_the_installed_command_is_the_command_line_and_its_module_imports_none_of_it() -> None:
    # A rebuild's workers are spawned: each imports its parent's main module (the `saga` script's)
    # first, and should not pay for the command line's imports it never runs.
    [script] = [e for e in entry_points(group="console_scripts") if e.name == "saga"]
    assert script.value == "infra.cli.__main__:main"
    probe = ("import sys, runpy; runpy.run_module('infra.cli.__main__', run_name='__mp_main__'); "
             "print(sorted(m for m in sys.modules"
             " if m.startswith(('infra.cli.main', 'typer', 'infra.bootstrap'))))")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"
    assert subprocess.run([sys.executable, "-m", "infra.cli", "--help"], capture_output=True, text=True,
                          check=True).stdout.count("projections") >= 1


def test_the_command_line_starts_without_graphqls_engine() -> None:
    # Every `saga` command pays for what the command line imports; GraphQL's engine is the API's alone.
    imports = "import sys, infra.cli.main; print('graphql' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", imports], capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip() == "False"


def test_the_demo_follows_as_many_orders_in_one_request_as_the_api_allows_aliases() -> None:
    from infra.cli.demo import POLL_BATCH
    from read_api.graphql_limits import MAX_ALIASES

    assert POLL_BATCH == MAX_ALIASES

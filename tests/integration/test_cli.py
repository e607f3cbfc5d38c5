"""The `saga` command line, through typer's runner: what it says, and the exit status it ends with.

Exit statuses, as every command's help documents them: 0 done, 1 what was asked
for went wrong, 2 a bad option, argument or environment variable, 3 cannot
reach the database, the broker or the API, 4 not found.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import aio_pika
import pytest
from typer.testing import CliRunner, Result

from infra.bootstrap import bootstrap
from infra.cli.main import app
from infra.settings import Settings

runner = CliRunner()
QUEUES = ("orders", "orders_catalogue", "payments", "inventory", "shipping", "notifications",
          "order_fulfillment")
WIDE = {"COLUMNS": "200"}  # help and messages on one line each, as in a wide terminal


def use(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.delenv("DB_HOST", raising=False)
    if settings.database_url:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))


@pytest.fixture
def nothing_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The embedded default in a directory of the test's own; the test sets what it needs."""
    for name in ("DATABASE_URL", "AMQP_URL", "DB_HOST", "RABBITMQ_URL", "RABBITMQ_HOST", "BUS_NAMESPACE",
                 "PAYMENT_FAILURE_RATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def saga(*args: str) -> Result:
    return runner.invoke(app, list(args), env=WIDE)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens on it once the socket is closed


def test_saga_help_lists_every_command_and_what_each_exit_status_means() -> None:
    saga_script = Path(sys.executable).with_name("saga")
    result = subprocess.run([saga_script, "--help"], capture_output=True, text=True, timeout=30,
                            env={"COLUMNS": "200", "PATH": ""})
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "seed", "demo", "audit", "dlq", "projections", "reset"):
        assert f" {command} " in result.stdout
    for status in ("0  done", "2  a bad option", "3  cannot reach", "4  not found"):
        assert status in result.stdout


def test_audit_of_an_unknown_order_exits_4_naming_the_order(nothing_configured: pytest.MonkeyPatch) -> None:
    assert saga("migrate").exit_code == 0
    order_id = uuid4()
    result = saga("audit", str(order_id))

    assert result.exit_code == 4, result.output
    assert f"no order {order_id}" in result.stderr
    assert "Traceback" not in result.output


def run_in(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`saga ARGS` as a process of its own, started in `folder`, on the embedded default unless `env` says."""
    unset = ("DATABASE_URL", "AMQP_URL", "DB_HOST", "RABBITMQ_URL", "RABBITMQ_HOST", "DATA_DIR", "COLUMNS")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run([sys.executable, "-m", "infra.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=folder, env={**environment, "COLUMNS": "200", **env})


READING = [["audit", str(uuid4())], ["projections", "status"], ["projections", "rebuild"], ["dlq", "list"],
           ["dlq", "redrive", "payments:0123456789abcdef"]]


@pytest.mark.parametrize("command", READING, ids=" ".join)
def test_a_command_that_reads_run_where_no_server_ran_says_there_is_no_store_and_creates_none(
    command: list[str], tmp_path: Path
) -> None:
    result = run_in(tmp_path, *command)

    elsewhere = "AMQP_URL" if command[0] == "dlq" else "DATABASE_URL"  # where else dlq's queues can be
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr == (f"error: no store in {tmp_path / 'data'} (DATA_DIR): start `saga serve` there "
                             f"first, or set DATA_DIR or {elsewhere}\n")
    assert list(tmp_path.iterdir()) == []


def test_a_command_that_reads_a_partial_store_names_what_is_missing_and_creates_nothing(
    nothing_configured: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert saga("seed").exit_code == 0  # the catalogue alone: the inventory's store, no other
    before = sorted(path.name for path in (tmp_path / "data").iterdir())

    result = saga("audit", str(uuid4()))

    assert result.exit_code == 3, result.output
    assert "lacks orders.sqlite, payments.sqlite, shipping.sqlite" in result.stderr
    assert "run `saga migrate` there" in result.stderr
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == before


def test_rebuilding_an_unknown_projection_is_a_usage_error_listing_the_projections(
    nothing_configured: pytest.MonkeyPatch,
) -> None:
    result = saga("projections", "rebuild", "nope")

    assert result.exit_code == 2
    assert "'NAME'" in result.stderr and "'nope'" in result.stderr and "order_summary" in result.stderr


def test_listing_the_parked_messages_of_an_unknown_queue_is_a_usage_error(
    nothing_configured: pytest.MonkeyPatch,
) -> None:
    result = saga("dlq", "list", "nope")

    assert result.exit_code == 2
    assert "'QUEUE'" in result.stderr and "payments" in result.stderr


def test_serving_on_cpus_the_process_may_not_use_or_a_bad_cpu_affinity_is_a_usage_error(
    nothing_configured: pytest.MonkeyPatch,
) -> None:
    nothing_configured.setenv("CPU_AFFINITY", "4096")
    unusable = saga("serve", "--port", str(closed_port()))
    nothing_configured.setenv("CPU_AFFINITY", "fast")
    bad = saga("serve", "--port", str(closed_port()))

    assert unusable.exit_code == 2 and "CPU_AFFINITY names CPUs [4096]" in unusable.stderr
    assert bad.exit_code == 2 and "cpu_affinity" in bad.stderr.lower()


def test_demo_against_a_closed_port_exits_3_naming_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = saga("demo", "--orders", "2", "--url", url)

    assert result.exit_code == 3, result.output
    assert f"cannot reach the API at --url {url}" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [
    ["migrate"], ["seed"], ["audit", str(uuid4())], ["projections", "status"], ["projections", "rebuild"],
], ids=" ".join)
def test_a_database_that_does_not_answer_exits_3_naming_it(
    command: list[str], nothing_configured: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    nothing_configured.setenv("DATABASE_URL", f"postgresql://postgres:secret@127.0.0.1:{port}/saga")
    result = saga(*command)

    assert result.exit_code == 3, result.output
    assert f"cannot reach the database at postgresql://postgres@127.0.0.1:{port}/saga (DATABASE_URL)" \
        in result.stderr
    assert "secret" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", [["dlq", "list"], ["dlq", "redrive", "payments:0123456789abcdef"]],
                         ids=" ".join)
def test_a_broker_that_does_not_answer_exits_3_naming_it(
    command: list[str], nothing_configured: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    nothing_configured.setenv("AMQP_URL", f"amqp://guest:secret@127.0.0.1:{port}/")
    result = saga(*command)

    assert result.exit_code == 3, result.output
    assert f"cannot reach the broker at amqp://127.0.0.1:{port}/ (AMQP_URL)" in result.stderr
    assert "secret" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("command", [
    ["dlq", "list"], ["dlq", "redrive", "payments:0123456789abcdef"], ["serve"],
    ["audit", str(uuid4())], ["projections", "status"], ["projections", "rebuild"], ["seed"], ["migrate"],
], ids=" ".join)
def test_a_server_that_does_not_answer_is_named_in_one_line_and_no_library_adds_its_own(
    command: list[str], tmp_path: Path
) -> None:
    if command[0] == "dlq":
        down = {"AMQP_URL": f"amqp://guest:guest@127.0.0.1:{closed_port()}/"}
    elif command[0] == "serve":  # with the embedded database: the broker is what it cannot reach
        command = ["serve", "--port", str(closed_port())]
        down = {"AMQP_URL": f"amqp://guest:guest@127.0.0.1:{closed_port()}/"}
    else:
        down = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port()}/saga"}

    result = run_in(tmp_path, *command, DATA_DIR=str(tmp_path / "data"), **down)

    assert result.returncode == 3, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: cannot reach the "), line
    assert result.stdout == ""


@pytest.mark.parametrize(("variable", "value"), [("DATABASE_URL", "mysql://db/shop"),
                                                 ("PAYMENT_FAILURE_RATE", "3")])
def test_a_bad_environment_variable_is_a_usage_error_naming_it(
    variable: str, value: str, nothing_configured: pytest.MonkeyPatch
) -> None:
    nothing_configured.setenv(variable, value)
    result = saga("seed")

    assert result.exit_code == 2
    assert f"bad configuration: {variable}" in result.stderr


def test_serve_refuses_an_unknown_role_and_roles_without_a_broker(
    nothing_configured: pytest.MonkeyPatch,
) -> None:
    unknown = saga("serve", "--role", "cashier")
    assert unknown.exit_code == 2
    assert "--role: no role cashier" in unknown.stderr

    alone = saga("serve", "--role", "payments")
    assert alone.exit_code == 2
    assert "--role needs AMQP_URL" in alone.stderr


def test_migrate_then_seed_twice_lists_the_catalogue_once(
    store_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, store_settings)
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    first = runner.invoke(app, ["seed"])
    second = runner.invoke(app, ["seed"])
    assert (first.exit_code, second.exit_code) == (0, 0)
    assert "5 product(s) listed" in first.output
    assert "0 product(s) listed" in second.output
    with bootstrap(store_settings.model_copy(update={"create_table": False})) as system:
        stocks = system.inventory.list_products()
    assert len(stocks) == 5
    assert sum(stock.on_hand for stock in stocks) == 50 + 100 + 75 + 30 + 25


def test_services_started_without_tables_after_migrate_work_against_postgres(
    postgres_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, postgres_settings)
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    with bootstrap(postgres_settings.model_copy(update={"create_table": False})) as system:
        assert system.check() == {"status": "ok"}


def test_migrate_with_a_broker_declares_every_queue_so_a_role_started_later_finds_its_messages(
    postgres_settings: Settings, rabbitmq_url: str, rabbit_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, postgres_settings)
    monkeypatch.setenv("AMQP_URL", rabbitmq_url)
    monkeypatch.setenv("BUS_NAMESPACE", rabbit_namespace)
    first = runner.invoke(app, ["migrate"], env=WIDE)
    again = runner.invoke(app, ["migrate"], env=WIDE)
    assert (first.exit_code, again.exit_code) == (0, 0), first.output + again.output
    assert f"broker queues ready for {', '.join(QUEUES)}" in first.output

    async def consumers_and_waiting() -> dict[str, tuple[int | None, int | None]]:
        connection = await aio_pika.connect(rabbitmq_url)
        try:
            channel = await connection.channel()
            exchange = await channel.get_exchange(f"{rabbit_namespace}.saga.commands")
            await exchange.publish(aio_pika.Message(b"{}"), "payments.ChargePayment", mandatory=True)
            found = {}
            for queue in QUEUES:
                declared = await channel.declare_queue(f"{rabbit_namespace}.{queue}", passive=True)
                result = declared.declaration_result
                found[queue] = (result.consumer_count, result.message_count)
            return found
        finally:
            await connection.close()

    # The mandatory publish is routed: the payments queue holds it until a payments role consumes it.
    found = asyncio.run(consumers_and_waiting())
    assert found["payments"] == (0, 1)
    assert all(counts == (0, 0) for queue, counts in found.items() if queue != "payments"), found

"""`saga serve` as a newcomer runs it: the embedded default, with nothing installed but the project."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from infra.bootstrap import bootstrap
from infra.settings import Settings

SEED_PRODUCTS = {
    "Laptop Pro 15", "Wireless Mouse", "USB-C Hub", "Mechanical Keyboard", "Monitor 24 inch",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_health(process: subprocess.Popen[bytes], base: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"saga serve exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"saga serve did not answer /healthz within {within} s")


@contextmanager
def embedded_server(
    tmp_path: Path, *, stop_with: signal.Signals = signal.SIGINT, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`saga serve` on the embedded default in `tmp_path`: yields its address once it answers.

    Stops it with `stop_with` at the end and waits for it to exit (killing it after 15 s);
    its output stays readable on the process's stdout. The output goes to a file, `serve.log`, which
    that stdout reads from the start: a pipe nobody reads until the end would fill up with a busy
    server's log and stop it mid-write.
    """
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AMQP_URL", "DB_HOST")}
    environment |= {"DATA_DIR": str(tmp_path / "data"), **env}
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "serve", "--port", str(port)],
            env=environment, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT,
        )
    process.stdout = log.open("rb")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(process, base)
        yield base, process
    finally:
        process.send_signal(stop_with)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with embedded_server(tmp_path) as (base, _):
        yield base, tmp_path / "data"


def test_serve_answers_health_and_readiness_on_the_embedded_default(served: tuple[str, Path]) -> None:
    base, _ = served
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base}/readyz").status_code == 200


def test_the_first_start_creates_the_sqlite_store_and_lists_the_seed_catalogue(
    served: tuple[str, Path],
) -> None:
    _, data_dir = served
    assert (data_dir / "orders.sqlite").exists()
    with bootstrap(Settings(_env_file=None, data_dir=data_dir)) as system:
        names = {stock.name for stock in system.inventory.list_products()}
    assert names == SEED_PRODUCTS


PLACE = """
mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id status } errors { code field } }
}"""
FOLLOW = "query($id: ID!) { order(id: $id) { status payment { status } saga { status } } }"


def test_an_order_placed_through_graphql_completes_and_a_sigterm_stops_the_server_cleanly(
    tmp_path: Path,
) -> None:
    no_failures = dict.fromkeys(
        ("PAYMENT_FAILURE_RATE", "SHIPPING_FAILURE_RATE", "NOTIFICATION_FAILURE_RATE"), "0"
    )
    with embedded_server(tmp_path, stop_with=signal.SIGTERM, **no_failures) as (base, process):
        assert "GraphiQL" in httpx.get(f"{base}/graphql", headers={"Accept": "text/html"}).text
        order = {
            "customerId": "7b0e3c2a-1111-4a55-9c1e-2f3a4b5c6d7e",
            "items": [{"productId": "550e8400-e29b-41d4-a716-446655440002", "quantity": 1}],
            "shippingAddress": {"street": "1 Main St", "city": "Springfield", "state": "IL",
                                "zipCode": "62701", "country": "US"},
        }
        placed = httpx.post(f"{base}/graphql", json={"query": PLACE, "variables": {"input": order}}).json()
        payload = placed["data"]["placeOrder"]
        assert payload["errors"] == [] and payload["order"]["status"] in ("PENDING", "PROCESSING")
        order_id = payload["order"]["id"]
        deadline, seen = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            answer = httpx.post(f"{base}/graphql", json={"query": FOLLOW, "variables": {"id": order_id}})
            seen = answer.json()["data"]["order"]
            if seen["status"] == "COMPLETED" and seen["saga"] and seen["saga"]["status"] == "COMPLETED":
                break
            time.sleep(0.2)
        completed = {"status": "COMPLETED"}
        assert seen == {**completed, "payment": completed, "saga": completed}
    output = process.stdout.read().decode() if process.stdout else ""
    # The runtime ran down inside the server's lifespan: consumers, relays and the bus were stopped.
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("role", [[], ["--role", "payments"]], ids=["every role", "a worker role"])
def test_serve_on_a_port_in_use_says_so_and_how_to_choose_another_before_opening_anything(
    role: list[str], tmp_path: Path
) -> None:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AMQP_URL", "DB_HOST")}
    environment["DATA_DIR"] = str(tmp_path / "data")
    if role:  # a worker role needs a broker; it is never reached, as the port is tried first
        environment["AMQP_URL"] = "amqp://127.0.0.1:1/"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "infra.cli", "serve", "--port", str(port), *role],
                              env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=30)

    assert done.returncode == 1, done.stdout + done.stderr
    choose = "--port (or PORT)" if not role else "--port"
    assert done.stdout + done.stderr == (f"error: port {port} on 127.0.0.1 is in use: stop what holds it, "
                                         f"or choose another with {choose}\n")
    assert list(tmp_path.iterdir()) == []  # no store, no lock: nothing was opened


def test_the_start_banner_reads_in_80_columns(tmp_path: Path) -> None:
    with embedded_server(tmp_path, COLUMNS="80") as (base, process):
        pass
    output = process.stdout.read().decode() if process.stdout else ""

    # The banner is what is not a line of the log (the seed catalogue's, then uvicorn's).
    log_line = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} |INFO: )")
    banner = [line for line in output.splitlines() if not log_line.match(line)]
    assert banner[0] == f"saga serving on {base} (every role)", output
    assert any(f"{base}/graphql" in line for line in banner), output
    assert max(len(line) for line in banner) <= 80, banner


def threads_cpus(base: str, process: subprocess.Popen[bytes]) -> tuple[int, set[str]]:
    """The server's threads, counted, and the CPUs each may run on (as /proc lists them)."""
    httpx.get(f"{base}/readyz")  # the roles, their loops and worker threads all started by now
    tasks = Path(f"/proc/{process.pid}/task")
    masks = {(task / "status").read_text().split("Cpus_allowed_list:")[1].split()[0]
             for task in tasks.iterdir()}
    return len(list(tasks.iterdir())), masks


@pytest.mark.parametrize("setting", ["one", ""], ids=["one", "unset"])
def test_a_server_of_every_role_keeps_every_thread_on_one_cpu(tmp_path: Path, setting: str) -> None:
    with embedded_server(tmp_path, CPU_AFFINITY=setting) as (base, process):
        threads, masks = threads_cpus(base, process)
    allowed = sorted(os.sched_getaffinity(0))
    assert threads > 1 and masks == {str(allowed[process.pid % len(allowed)])}


def test_cpu_affinity_any_leaves_the_servers_threads_to_the_scheduler(tmp_path: Path) -> None:
    with embedded_server(tmp_path, CPU_AFFINITY="any") as (base, process):
        threads, masks = threads_cpus(base, process)
    allowed = os.sched_getaffinity(0)
    assert threads > 1 and len(masks) == 1
    listed = masks.pop()  # "0-1", or "0,2-3"
    spans = [part.split("-") for part in listed.split(",")]
    assert {n for span in spans for n in range(int(span[0]), int(span[-1]) + 1)} == allowed

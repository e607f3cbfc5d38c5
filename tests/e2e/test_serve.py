"""`saga serve` as a newcomer runs it: the embedded default, with nothing installed but the project."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AMQP_URL", "DB_HOST")}
    env["DATA_DIR"] = str(data_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "serve", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(process, base)
        yield base, data_dir
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


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

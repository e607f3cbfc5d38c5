"""`saga serve --role api --workers 2`: two processes on one port, both answering, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from infra.settings import Settings
from tests.e2e.test_serve import free_port, wait_for_health

pytestmark = pytest.mark.e2e

ORDERS = "{ orders(first: 1) { totalCount } }"


def test_two_api_workers_share_the_port_answer_and_stop_cleanly(
    postgres_settings: Settings, rabbitmq_url: str, rabbit_namespace: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": str(postgres_settings.database_url), "AMQP_URL": rabbitmq_url,
           "BUS_NAMESPACE": rabbit_namespace}
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "serve", "--role", "api", "--workers", "2", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_health(process, base, within=60)
        answered: set[int] = set()
        deadline = time.monotonic() + 60
        while answered != {1, 2} and time.monotonic() < deadline:  # a new connection each time
            ready = httpx.get(f"{base}/readyz", timeout=10)
            if ready.status_code != 200:  # this worker still opening its stores
                time.sleep(0.2)
                continue
            answered.add(ready.json()["worker"])
            query = httpx.post(f"{base}/graphql", json={"query": ORDERS}, timeout=10)
            assert query.status_code == 200 and "errors" not in query.json(), query.text
        assert answered == {1, 2}
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    output = process.stdout.read().decode() if process.stdout else ""
    assert code == 0, output
    assert "Traceback" not in output, output


def test_several_workers_are_refused_beside_other_roles() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", "serve", "--workers", "2"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert "--workers above 1 needs --role api alone" in done.stdout + done.stderr

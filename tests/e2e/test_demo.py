"""`saga demo` against a running server on the embedded default, and against no server at all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_serve import embedded_server, free_port

DEMO = (sys.executable, "-m", "infra.cli", "demo")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[str]:
    with embedded_server(tmp_path) as (base, _):
        yield base


def test_demo_places_twenty_orders_and_follows_each_to_a_terminal_status(api: str) -> None:
    result = subprocess.run(
        [*DEMO, "--orders", "20", "--concurrency", "5", "--url", api, "--timeout", "25"],
        capture_output=True, text=True, timeout=35, env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    finished = re.search(r"(\d+) of (\d+) order\(s\) finished: (\d+) completed, (\d+) cancelled, "
                         r"(\d+) unfinished, (\d+) not placed", result.stdout)
    assert finished, result.stdout
    total, orders, completed, cancelled, unfinished, not_placed = map(int, finished.groups())
    assert (total, orders, unfinished, not_placed) == (20, 20, 0, 0)
    assert completed + cancelled == 20
    assert "latency p95" in result.stdout


def test_demo_against_an_unreachable_url_exits_3_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [*DEMO, "--orders", "3", "--url", url], capture_output=True, text=True, timeout=20,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "cannot reach the API" in result.stderr and url in result.stderr, result.stderr

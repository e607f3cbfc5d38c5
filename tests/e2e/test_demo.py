"""`saga demo` against a running server on the embedded default, and against no server at all.

The stock tests drain the seed stock to a few units first, with one large
order per server, so that a run of a dozen orders is already more than it
covers; the simulated failures are off, so the only cancellations left are
for stock.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest

from tests.e2e.test_serve import embedded_server, free_port

DEMO = (sys.executable, "-m", "infra.cli", "demo")
LEFT = 2  # units of each product left once the stock is drained
ADDRESS = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701", "country": "US"}
PLACE = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { order { id } errors { code } } }"
FOR_STOCK = "stock reservation rejected"
WARNING = re.compile(r"stock covers about (\d+) of (\d+) orders; the rest will be cancelled for stock")
HINT = "saga demo --restock tops the stock up first"


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


def ask(base: str, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = {"query": query, "variables": variables or {}}
    answer = httpx.post(f"{base}/graphql", json=body, headers=headers)
    answer.raise_for_status()
    data = answer.json()
    assert "errors" not in data, data["errors"]
    return data["data"]


def available(base: str) -> dict[str, int]:
    return {p["id"]: p["available"] for p in ask(base, "{ products { id available } }")["products"]}


def drain(base: str, token: str | None = None) -> None:
    """One order for all but LEFT units of every product; returns once the stock shows it reserved."""
    items = [{"productId": product, "quantity": units - LEFT}
             for product, units in available(base).items() if units > LEFT]
    order = {"customerId": str(uuid4()), "items": items, "shippingAddress": ADDRESS}
    placed = ask(base, PLACE, {"input": order}, token)["placeOrder"]
    assert placed["errors"] == [], placed
    deadline = time.monotonic() + 20
    while set(available(base).values()) != {LEFT}:
        assert time.monotonic() < deadline, f"the stock was not drained: {available(base)}"
        time.sleep(0.2)


def demo(base: str, *args: str, token: str | None = None, stdin: int | None = subprocess.DEVNULL,
         ) -> subprocess.CompletedProcess[str]:
    """`saga demo` against `base`, stdin not a terminal unless given, SAGA_TOKEN set only to `token`."""
    env = {k: v for k, v in os.environ.items() if k != "SAGA_TOKEN"} | {"COLUMNS": "200"}
    if token is not None:
        env["SAGA_TOKEN"] = token
    return subprocess.run([*DEMO, "--url", base, "--timeout", "25", *args], capture_output=True, text=True,
                          timeout=40, env=env, stdin=stdin)


def outcomes(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The finished line's counts, and the summary table's cancellations for stock."""
    finished = re.search(r"(\d+) of (\d+) order\(s\) finished: (\d+) completed, (\d+) cancelled, "
                         r"(\d+) unfinished, (\d+) not placed", result.stdout)
    assert finished, result.stdout + result.stderr
    names = ("finished", "orders", "completed", "cancelled", "unfinished", "not placed")
    counts = dict(zip(names, map(int, finished.groups()), strict=True))
    for_stock = re.search(rf"{FOR_STOCK}\s*│\s*(\d+)", result.stdout)
    counts[FOR_STOCK] = int(for_stock.group(1)) if for_stock else 0
    return counts


@contextmanager
def without_failures(tmp_path: Path) -> Iterator[str]:
    """`saga serve` with no simulated failures, logging warnings only.

    Its output is a pipe read only once it stops: the INFO lines of a few dozen orders fill it, and
    the server then blocks on its next line.
    """
    with embedded_server(tmp_path, PAYMENT_FAILURE_RATE="0", SHIPPING_FAILURE_RATE="0",
                         NOTIFICATION_FAILURE_RATE="0", LOG_LEVEL="WARNING") as (base, _):
        yield base


@pytest.fixture
def low_stock(tmp_path: Path) -> Iterator[str]:
    with without_failures(tmp_path) as base:
        drain(base)
        yield base


def test_a_run_the_stock_cannot_cover_is_announced_with_a_hint_and_orders_are_cancelled_for_stock(
    low_stock: str,
) -> None:
    result = demo(low_stock, "--orders", "12")
    assert result.returncode == 0, result.stdout + result.stderr
    warning = WARNING.search(result.stderr)
    assert warning, result.stderr
    assert int(warning.group(1)) < 12 and warning.group(2) == "12"
    assert HINT in result.stderr
    assert "Restock now?" not in result.stderr, "there is no one at a terminal to ask"
    counts = outcomes(result)
    assert counts[FOR_STOCK] > 0
    assert counts["cancelled"] == counts[FOR_STOCK], "with no simulated failures, stock is the only reason"


def test_with_restock_the_demo_tops_the_stock_up_first_and_no_order_is_cancelled_for_stock(
    low_stock: str,
) -> None:
    result = demo(low_stock, "--orders", "12", "--restock")
    assert result.returncode == 0, result.stdout + result.stderr
    assert WARNING.search(result.stderr), result.stderr
    assert "restocked" in result.stderr and HINT not in result.stderr
    counts = outcomes(result)
    assert counts[FOR_STOCK] == 0
    assert counts["completed"] == 12, result.stdout


def test_on_a_terminal_the_demo_asks_whether_to_restock_and_enter_says_yes(low_stock: str) -> None:
    controller, terminal = pty.openpty()
    try:
        os.write(controller, b"\n")  # Enter: the default answer, yes
        result = demo(low_stock, "--orders", "12", stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Restock now? [Y/n]" in result.stderr
    assert "restocked" in result.stderr
    assert outcomes(result)[FOR_STOCK] == 0

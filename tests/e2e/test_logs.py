"""`saga serve` with LOG_FORMAT=json: one order is followed by its correlation id through every role's log.

Each context writes one line per command it handles, the saga one per event it
hears, and every line written while a message is handled carries the order's
correlation id and the message's causation id, whoever wrote it. Run once as
separate processes on PostgreSQL and RabbitMQ, each role writing its own log
file, and once as the embedded all-in-one process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from infra.bootstrap import bootstrap
from tests.e2e.processes import Cluster
from tests.e2e.test_serve import FOLLOW, PLACE, free_port, wait_for_health

RATES = ("PAYMENT_FAILURE_RATE", "SHIPPING_FAILURE_RATE", "NOTIFICATION_FAILURE_RATE")
NO_FAILURES = dict.fromkeys(RATES, "0")
JSON_LOGS = {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO", **NO_FAILURES}
# What each role says about a completed order, by logger: the command (or event) and what it recorded.
SAID = {
    "api": {"commands.orders": ["Orders handled PlaceOrder: recorded Order.Placed"]},
    "orders": {"commands.orders": ["Orders handled CompleteOrder: recorded Order.Completed"]},
    "payments": {"commands.payments": ["Payments handled ChargePayment: recorded Payment.Charged"]},
    "inventory": {"commands.inventory": ["Inventory handled ReserveStock: recorded",
                                         "Inventory handled CommitStock: recorded"]},
    "shipping": {"commands.shipping": ["Shipping handled CreateShipment: recorded"]},
    "notifications": {"commands.notifications": ["Notifications handled SendNotification: recorded"]},
    "saga": {"process_managers.application": ["saga heard OrderPlaced; decided",
                                              "saga heard OrderCompleted; decided Completed"]},
}
HANDLED_COMMANDS = {"orders", "payments", "inventory", "shipping", "notifications"}


def json_lines(output: str) -> list[dict[str, Any]]:
    """The log lines of the output (the banner on the console and the test's own notes are plain text)."""
    return [json.loads(text) for text in output.splitlines() if text.startswith("{")]


def place_and_follow(base: str, within: float = 30.0) -> str:
    """Place an order through the API and wait until it and its saga have completed; its id."""
    order = {
        "customerId": "7b0e3c2a-1111-4a55-9c1e-2f3a4b5c6d7e",
        "items": [{"productId": "550e8400-e29b-41d4-a716-446655440003", "quantity": 1}],
        "shippingAddress": {"street": "1 Main St", "city": "Springfield", "state": "IL",
                            "zipCode": "62701", "country": "US"},
    }
    placed = httpx.post(f"{base}/graphql", json={"query": PLACE, "variables": {"input": order}}, timeout=10)
    order_id: str = placed.json()["data"]["placeOrder"]["order"]["id"]
    deadline, status = time.monotonic() + within, None
    while time.monotonic() < deadline:
        follow = {"query": FOLLOW, "variables": {"id": order_id}}
        answer = httpx.post(f"{base}/graphql", json=follow, timeout=10)
        found = answer.json()["data"]["order"] or {}
        # The order completes before its saga hears so and ends: wait for both.
        status = found.get("status"), (found.get("saga") or {}).get("status")
        if status == ("COMPLETED", "COMPLETED"):
            return order_id
        time.sleep(0.2)
    raise AssertionError(f"order {order_id} and its saga are {status}, not COMPLETED, after {within} s")


def about(lines: list[dict[str, Any]], order_id: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("correlation_id") == order_id]


def assert_followed(role: str, lines: list[dict[str, Any]], order_id: str) -> None:
    """The role said what it did about the order, every such line with a causation id, one per message."""
    mine = about(lines, order_id)
    assert mine, f"{role} wrote no line with the order's correlation id"
    assert all(line.get("causation_id") for line in mine), [x for x in mine if not x.get("causation_id")]
    for logger, starts in SAID[role].items():
        said = [line["message"] for line in mine if line["logger"] == logger and line["level"] == "INFO"]
        for start in starts:
            assert any(message.startswith(start) for message in said), f"{role} never said {start!r}: {said}"
        if role in HANDLED_COMMANDS:
            per_message = Counter(line["causation_id"] for line in mine if line["logger"] == logger)
            assert set(per_message.values()) == {1}, f"{role} wrote more than one line for a command: {mine}"


def test_one_order_is_followed_by_its_correlation_id_through_every_roles_log(cluster: Cluster) -> None:
    cluster.env |= JSON_LOGS
    with bootstrap(cluster.settings) as system:
        system.inventory.seed()
    cluster.start_all(["orders", "payments", "inventory", "shipping", "notifications", "saga", "projector",
                       "api"])
    cluster.start("relay")  # once the queues it publishes to exist
    [api] = cluster.role("api")

    order_id = place_and_follow(f"http://127.0.0.1:{api.port}")

    for role in SAID:
        [process] = cluster.role(role)
        assert_followed(role, json_lines(process.log_path.read_text()), order_id)


@contextmanager
def all_in_one(tmp_path: Path, log_path: Path, **env: str) -> Iterator[str]:
    """`saga serve` on the embedded default, its output in `log_path`; yields its address once it answers."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AMQP_URL", "DB_HOST")}
    environment |= {"DATA_DIR": str(tmp_path / "data"), **env}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "serve", "--port", str(port)],
            env=environment, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_health(process, base)
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                raise


def test_in_the_all_in_one_process_every_context_logs_the_order_with_its_ids(tmp_path: Path) -> None:
    log_path = tmp_path / "serve.log"
    with all_in_one(tmp_path, log_path, **JSON_LOGS) as base:
        order_id = place_and_follow(base)
    output = log_path.read_text()
    lines = json_lines(output)
    assert any(line["logger"].startswith("uvicorn") for line in lines), output
    for role in SAID:
        assert_followed(role, lines, order_id)

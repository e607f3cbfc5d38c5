"""`saga serve` with LOG_FORMAT=json: the lines about one order carry its ids, whoever wrote them."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_serve import FOLLOW, PLACE, embedded_server


def json_lines(output: str) -> list[dict[str, Any]]:
    """The log lines of the output (the banner on the console is plain text)."""
    lines = []
    for text in output.splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


def place_and_follow(base: str) -> str:
    order = {
        "customerId": "7b0e3c2a-1111-4a55-9c1e-2f3a4b5c6d7e",
        "items": [{"productId": "550e8400-e29b-41d4-a716-446655440003", "quantity": 1}],
        "shippingAddress": {"street": "1 Main St", "city": "Springfield", "state": "IL",
                            "zipCode": "62701", "country": "US"},
    }
    placed = httpx.post(f"{base}/graphql", json={"query": PLACE, "variables": {"input": order}}).json()
    order_id: str = placed["data"]["placeOrder"]["order"]["id"]
    deadline, status = time.monotonic() + 20, None
    while time.monotonic() < deadline:
        answer = httpx.post(f"{base}/graphql", json={"query": FOLLOW, "variables": {"id": order_id}})
        status = answer.json()["data"]["order"]["status"]
        if status == "COMPLETED":
            return order_id
        time.sleep(0.2)
    raise AssertionError(f"order {order_id} is {status}, not COMPLETED, after 20 s")


def test_every_log_line_about_an_order_carries_its_correlation_and_causation_ids(tmp_path: Path) -> None:
    env = dict.fromkeys(("PAYMENT_FAILURE_RATE", "SHIPPING_FAILURE_RATE", "NOTIFICATION_FAILURE_RATE"), "0")
    env |= {"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    with embedded_server(tmp_path, stop_with=signal.SIGTERM, **env) as (base, process):
        order_id = place_and_follow(base)
    output = process.stdout.read().decode() if process.stdout else ""
    lines = json_lines(output)
    assert any(line["logger"].startswith("uvicorn") for line in lines), output
    about_the_order = [line for line in lines if line.get("correlation_id") == order_id]
    saga = [line["message"] for line in about_the_order if line["logger"] == "process_managers.application"]
    assert any(message.endswith("decided Completed") for message in saga), output
    others = {line["logger"] for line in about_the_order} - {"process_managers.application"}
    assert "commands.orders" in others, f"only the saga logged about the order:\n{output}"
    assert all(line.get("causation_id") for line in about_the_order), about_the_order

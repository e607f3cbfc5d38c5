"""`saga audit`, `saga dlq` and `saga projections status`, as processes of their own, beside a running
embedded server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_serve import FOLLOW, PLACE, embedded_server

CLI = (sys.executable, "-m", "infra.cli")
ORDER = {
    "customerId": "7b0e3c2a-2222-4a55-9c1e-2f3a4b5c6d7e",
    "items": [{"productId": "550e8400-e29b-41d4-a716-446655440002", "quantity": 1}],
    "shippingAddress": {"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701",
                        "country": "US"},
}


def saga(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "AMQP_URL", "DB_HOST")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30,
                          env={**environment, "DATA_DIR": str(data_dir), "COLUMNS": "200"})


def cancelled_order(base: str) -> str:
    placed = httpx.post(f"{base}/graphql", json={"query": PLACE, "variables": {"input": ORDER}}).json()
    order_id: str = placed["data"]["placeOrder"]["order"]["id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = httpx.post(f"{base}/graphql", json={"query": FOLLOW, "variables": {"id": order_id}}).json()
        order = answer["data"]["order"]
        if order["status"] == "CANCELLED" and order["saga"]["status"] == "COMPENSATED":
            return order_id
        time.sleep(0.2)
    raise AssertionError(f"order {order_id} was not cancelled within 20 s")


def test_audit_and_dlq_list_read_what_the_running_server_recorded(tmp_path: Path) -> None:
    with embedded_server(tmp_path, PAYMENT_FAILURE_RATE="1") as (base, _):
        order_id = cancelled_order(base)

        audit = saga(tmp_path / "data", "audit", order_id)
        parked = saga(tmp_path / "data", "dlq", "list")
        status = saga(tmp_path / "data", "projections", "status")
        unknown = saga(tmp_path / "data", "dlq", "redrive", "payments:0123456789abcdef")

    assert audit.returncode == 0, audit.stdout + audit.stderr
    story = ("Order.Placed", "Payment.Declined", "OrderFulfillment.CompensationStarted", "Order.Cancelled")
    for event in story:
        assert event in audit.stdout, audit.stdout
    assert order_id in audit.stdout
    assert parked.returncode == 0, parked.stdout + parked.stderr
    assert "0 parked message(s)" in parked.stderr
    assert status.returncode == 0, status.stdout + status.stderr
    assert "order_summary" in status.stdout
    assert (unknown.returncode, unknown.stdout) == (4, ""), unknown.stderr
    assert "no parked message payments:0123456789abcdef" in unknown.stderr

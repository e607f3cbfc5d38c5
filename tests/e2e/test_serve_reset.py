"""`saga reset` beside `saga serve` on the embedded default: afresh after it, refused while a server runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_serve import PLACE, SEED_PRODUCTS, embedded_server, free_port

ORDER = {
    "customerId": "7b0e3c2a-3333-4a55-9c1e-2f3a4b5c6d7e",
    "items": [{"productId": "550e8400-e29b-41d4-a716-446655440002", "quantity": 2}],
    "shippingAddress": {"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701",
                        "country": "US"},
}
SEED_UNITS = 50 + 100 + 75 + 30 + 25


def saga(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    unset = ("DATABASE_URL", "AMQP_URL", "DB_HOST", "AUTH_MODE", "AUTH_JWT_SECRET", "AUTH_JWT_PUBLIC_KEY")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run([sys.executable, "-m", "infra.cli", *args], capture_output=True, text=True,
                          timeout=30, cwd=folder, env={**environment, "DATA_DIR": str(folder / "data"),
                                                       "COLUMNS": "200"})


def ask(base: str, query: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.post(f"{base}/graphql", json={"query": query}).json()["data"]
    return data


def test_after_a_reset_the_next_serve_starts_with_the_seed_catalogue_and_no_orders(tmp_path: Path) -> None:
    with embedded_server(tmp_path) as (base, _):
        placed = httpx.post(f"{base}/graphql", json={"query": PLACE, "variables": {"input": ORDER}}).json()
        assert placed["data"]["placeOrder"]["errors"] == []

    reset = saga(tmp_path, "reset", "--yes")

    assert reset.returncode == 0, reset.stderr
    assert {path.name for path in (tmp_path / "data").iterdir()} == {"serve.lock"}
    with embedded_server(tmp_path) as (base, _):
        products = ask(base, "{ products { name available } }")["products"]
        orders = ask(base, "{ orders(first: 1) { totalCount } }")["orders"]
    assert {p["name"] for p in products} == SEED_PRODUCTS
    assert sum(p["available"] for p in products) == SEED_UNITS
    assert orders["totalCount"] == 0


def test_reset_and_a_second_server_are_refused_while_a_server_uses_the_folder(tmp_path: Path) -> None:
    with embedded_server(tmp_path) as (base, server):
        reset = saga(tmp_path, "reset", "--yes")
        second = saga(tmp_path, "serve", "--port", str(free_port()))
        stores = {path.name for path in (tmp_path / "data").iterdir()}
        assert httpx.get(f"{base}/healthz").status_code == 200

    in_use = f"`saga serve` (pid {server.pid}) is using {tmp_path / 'data'} (DATA_DIR): stop it first"
    assert reset.returncode == 1, reset.stderr
    assert reset.stderr == f"error: {in_use}, then reset\n"
    assert "orders.sqlite" in stores and "bus.sqlite" in stores
    assert second.returncode == 1, second.stderr
    assert second.stderr == f"error: {in_use}, or set another DATA_DIR\n"
    assert second.stdout == ""

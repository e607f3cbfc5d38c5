"""`saga serve` and `saga token` as processes: who may call the API in each mode, and where dev may listen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

from tests.e2e.test_serve import embedded_server, free_port
from tests.tokens import SECRET

ORDERS = "{ orders(first: 5) { edges { node { id customerId } } } }"
PRODUCTS = "{ products { name } }"
INTROSPECT = "{ __schema { queryType { name } } }"
PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { id customerId status } errors { code field } } }"""
MOUSE = "550e8400-e29b-41d4-a716-446655440002"
ADDRESS = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701", "country": "US"}


def ask(base: str, query: str, variables: dict[str, Any] | None = None, token: str | None = None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = {"query": query, "variables": variables or {}}
    answer = httpx.post(f"{base}/graphql", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def saga(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "DATABASE_URL", "AMQP"))}
    return subprocess.run([sys.executable, "-m", "infra.cli", *args], env=environment | env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_dev_mode_on_loopback_needs_no_token(tmp_path: Path) -> None:
    customer = str(uuid4())
    with embedded_server(tmp_path) as (base, _):
        order = {"customerId": customer, "items": [{"productId": MOUSE, "quantity": 1}],
                 "shippingAddress": ADDRESS}
        placed = ask(base, PLACE, {"input": order})
        listed = ask(base, ORDERS)
        page = httpx.get(f"{base}/graphql", headers={"Accept": "text/html"})
    assert placed["data"]["placeOrder"]["errors"] == []
    assert [e["node"]["customerId"] for e in listed["data"]["orders"]["edges"]] == [customer]
    assert page.status_code == 200 and "graphiql" in page.text.lower()


def test_dev_mode_on_every_interface_exits_2_with_one_line_naming_the_secret(tmp_path: Path) -> None:
    done = saga("serve", "--host", "0.0.0.0", "--port", str(free_port()), DATA_DIR=str(tmp_path / "data"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "AUTH_JWT_SECRET" in lines[0], done.stderr
    assert not (tmp_path / "data").exists(), "it refused before opening any store"


def test_required_mode_serves_the_catalogue_to_anyone_and_orders_only_with_a_token(tmp_path: Path) -> None:
    customer = str(uuid4())
    token = saga("token", "--customer", customer, AUTH_JWT_SECRET=SECRET)
    assert token.returncode == 0, token.stderr
    with embedded_server(tmp_path, AUTH_JWT_SECRET=SECRET) as (base, process):
        anonymous = ask(base, ORDERS)
        products = ask(base, PRODUCTS)
        forged = ask(base, ORDERS, token=token.stdout.strip()[:-2] + "xx")
        placed = ask(base, PLACE, {"input": {"items": [{"productId": MOUSE, "quantity": 1}],
                                             "shippingAddress": ADDRESS}}, token=token.stdout.strip())
        own = ask(base, ORDERS, token=token.stdout.strip())
        introspection = ask(base, INTROSPECT, token=token.stdout.strip())
        graphiql = httpx.get(f"{base}/graphql", headers={"Accept": "text/html"})
        docs = httpx.get(f"{base}/openapi.json")
    assert anonymous["data"] is None
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert forged["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert len(products["data"]["products"]) == 5
    assert placed["data"]["placeOrder"]["order"]["customerId"] == customer
    assert [e["node"]["customerId"] for e in own["data"]["orders"]["edges"]] == [customer]
    assert introspection.get("data") is None and introspection["errors"]
    assert graphiql.status_code != 200 or "graphiql" not in graphiql.text.lower()
    assert docs.status_code == 403
    output = process.stdout.read().decode() if process.stdout else ""
    assert "auth: required" in output
    assert "Traceback" not in output


def test_saga_token_needs_the_secret_and_exactly_one_role() -> None:
    no_secret = saga("token", "--operator")
    both = saga("token", "--operator", "--admin", AUTH_JWT_SECRET=SECRET)
    not_an_id = saga("token", "--customer", "alice", AUTH_JWT_SECRET=SECRET)
    assert (no_secret.returncode, both.returncode, not_an_id.returncode) == (2, 2, 2)
    assert "AUTH_JWT_SECRET" in no_secret.stderr
    assert no_secret.stdout == both.stdout == not_an_id.stdout == ""

"""Realistic rows: orders placed through GraphQL for a few customers and followed to their end; and
the customers' tokens for required mode."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from bench.api_parts.config import ORDER, Config, RunFailed
from infra.cli.demo import ADDRESS, PLACE, TERMINAL
from read_api.identity import CUSTOMER, mint_token

PLACE_ATTEMPTS = 3
POLL_S = 0.5
PRODUCTS = "query { products { id } }"
RESTOCK = """
mutation($id: ID!, $quantity: Int!) {
  restock(productId: $id, quantity: $quantity) { errors { code message } }
}"""
ORDER_IDS = """
query($after: String) {
  orders(first: 100, after: $after) { pageInfo { hasNextPage endCursor } edges { node { id status } } }
}"""
PROJECTIONS = "query { projections { name lag } }"


@dataclass(frozen=True)
class Shop:
    """The placed orders by customer; load client i is customer i's (i modulo their number)."""

    customers: list[str]
    orders: dict[str, list[str]]

    def customer_of(self, client: int) -> str:
        return self.customers[client % len(self.customers)]

    def orders_of(self, client: int) -> list[str]:
        return self.orders[self.customer_of(client)]

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.orders.values())


def customers_of(config: Config) -> list[str]:
    """The same customers in every run and mode, so that runs ask for alike orders."""
    rng = random.Random(config.order_seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(config.customers)]


async def graphql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}},
                                 headers=headers)
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RunFailed(f"HTTP {response.status_code}: {json.dumps(body)[:500]}")
    return body["data"]


async def prepare(base: str, config: Config, token: str) -> tuple[dict[str, Any], Shop]:
    """Restock, place the orders, wait for every one to end and the projections to catch up."""
    # The admin token is operator and admin in required mode too; in dev mode it is not looked at.
    admin = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=admin) as client:
        products = [p["id"] for p in (await graphql(client, PRODUCTS))["products"]]
        for product in products:  # 3 units a line at most: no order is short of stock
            variables = {"id": product, "quantity": 3 * config.orders + 100}
            answer = await graphql(client, RESTOCK, variables)
            if answer["restock"]["errors"]:
                raise RunFailed(f"restock refused: {answer['restock']['errors']}")
        started = time.perf_counter()
        shop = await place_orders(client, config, products)
        statuses = await until_ended(client, shop, deadline=time.monotonic() + config.timeout)
        elapsed = time.perf_counter() - started
        await projections_caught_up(client, within=60)
    completed = sum(1 for status in statuses.values() if status == "COMPLETED")
    placed = {
        "placed": shop.count, "customers": len(shop.customers), "completed": completed,
        "cancelled": shop.count - completed, "place_and_finish_s": round(elapsed, 1),
    }
    return placed, shop


async def place_orders(client: httpx.AsyncClient, config: Config, products: list[str]) -> Shop:
    """--orders orders, dealt out to the customers in turn, --placers at a time."""
    customers = customers_of(config)
    rng = random.Random(config.order_seed)
    inputs: list[dict[str, Any]] = [{
        "customerId": customers[index % len(customers)],
        "idempotencyKey": f"bench-api-{index}",
        "items": [{"productId": product, "quantity": rng.randint(1, 3)}
                  for product in rng.sample(products, k=min(len(products), rng.randint(1, 2)))],
        "shippingAddress": ADDRESS,
    } for index in range(config.orders)]
    slots = asyncio.Semaphore(config.placers)

    async def place(order: dict[str, Any]) -> str:
        async with slots:
            for attempt in range(1, PLACE_ATTEMPTS + 1):
                try:
                    payload = (await graphql(client, PLACE, {"input": order}))["placeOrder"]
                    break
                except httpx.TransportError:  # the same idempotency key makes a resend safe
                    if attempt == PLACE_ATTEMPTS:
                        raise
        if payload["errors"] or payload["order"] is None:
            raise RunFailed(f"placeOrder refused: {payload['errors']}")
        return str(payload["order"]["id"])

    ids = await asyncio.gather(*(place(order) for order in inputs))
    by_customer: dict[str, list[str]] = {customer: [] for customer in customers}
    for order, order_id in zip(inputs, ids, strict=True):
        by_customer[order["customerId"]].append(order_id)
    return Shop(customers, by_customer)


async def until_ended(client: httpx.AsyncClient, shop: Shop, deadline: float) -> dict[str, str]:
    """Every placed order's status once each is COMPLETED or CANCELLED; RunFailed at the deadline."""
    while True:
        statuses = await order_statuses(client)
        if len(statuses) == shop.count and all(status in TERMINAL for status in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            raise RunFailed(f"the orders did not all end in time: {shop.count} placed, listed by status "
                            f"{dict(Counter(statuses.values()))}")
        await asyncio.sleep(POLL_S)


async def order_statuses(client: httpx.AsyncClient) -> dict[str, str]:
    """Every order's status, from the listing, 100 at a time."""
    found: dict[str, str] = {}
    after: str | None = None
    while True:
        page = (await graphql(client, ORDER_IDS, {"after": after}))["orders"]
        found.update({edge["node"]["id"]: edge["node"]["status"] for edge in page["edges"]})
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def projections_caught_up(client: httpx.AsyncClient, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        lags = {p["name"]: p["lag"] for p in (await graphql(client, PROJECTIONS))["projections"]}
        if not any(lags.values()):
            return
        await asyncio.sleep(0.2)
    raise RunFailed(f"the projections did not catch up within {within} s: {lags}")


@dataclass(frozen=True)
class TokenKey:
    """The auth settings a required-mode server of the bench runs with: a fresh HS256 secret, nothing else."""

    auth_jwt_secret: str
    auth_mode: str | None = None
    auth_jwt_public_key: str | None = None
    auth_jwt_algorithm: str | None = None
    auth_jwt_issuer: str | None = None
    auth_jwt_audience: str | None = None
    admin_token: str | None = None


def customer_tokens(key: TokenKey, shop: Shop, config: Config) -> list[str]:
    """Each customer's token, in the order of `shop.customers`, valid for longer than a measurement."""
    ttl = timedelta(seconds=config.wait_quiet + config.warmup + config.seconds + 600)
    return [mint_token(key, subject=customer, scopes=[CUSTOMER], ttl=ttl) for customer in shop.customers]


def check_required(base: str, shop: Shop, tokens: list[str]) -> None:
    """The server really asks for a token, and a customer's token does not open another's order."""
    with httpx.Client(base_url=base, timeout=30) as client:
        variables = {"id": shop.orders_of(0)[0]}
        anonymous = client.post("/graphql", json={"query": ORDER, "variables": variables}).json()
        codes = [(e.get("extensions") or {}).get("code") for e in anonymous.get("errors") or []]
        if "UNAUTHENTICATED" not in codes:
            raise RunFailed(f"required mode answered order(id) without a token: "
                            f"{json.dumps(anonymous)[:300]}")
        if len(shop.customers) > 1:
            other = client.post("/graphql", json={"query": ORDER, "variables": variables},
                                headers={"Authorization": f"Bearer {tokens[1]}"}).json()
            if other.get("errors") or other["data"]["order"] is not None:
                raise RunFailed(f"a customer's token was answered with another customer's order, or "
                                f"refused: {json.dumps(other)[:300]}")

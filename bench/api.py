"""GraphQL reads: requests/s and latency of `order(id)` and `orders(first: 20)`, and what a token costs.

Each run starts the real server (`python -m infra.cli serve`, every role in one
process) as a subprocess on a fresh, throw-away store:

  sqlite    the embedded default: SQLite files in a temp DATA_DIR, the in-process bus
  postgres  PostgreSQL + RabbitMQ: a new database (migrated and seeded, then dropped)
            and a RabbitMQ vhost of its own (deleted afterwards) with a random namespace

with the failure rates at their defaults (a fixed FAILURE_SEED). It restocks the
catalogue through the `restock` mutation, places --orders orders through GraphQL
`placeOrder` for one customer per client (--concurrency customers, the orders dealt
out among them in turn), waits until every one is COMPLETED or CANCELLED and the
projections have caught up, and stops that server. Then it starts the server again on
the same store, once for each auth mode measured (--auth), and sends each query from
--concurrency clients (tasks sharing one httpx.AsyncClient, HTTP keep-alive) for
--warmup seconds not counted and then --seconds counted:

  order             dev mode, no token: order(id) of a random order of the client's
                    customer, with its items, address, payment, shipment and saga steps
  orders_first_20   dev mode, no token: orders(first: 20), the same selection for each
                    of the 20 newest orders
  order_with_token  required mode (AUTH_JWT_SECRET set): the same as `order`, each
                    client sending its customer's token (scope customer)

Client i asks for the same orders in `order` and `order_with_token` (the same seeds),
and the two are measured one after the other, so `auth_cost` (with --auth both) is
their ratio: requests/s and server CPU a request with a token over without, and the
p99 of each.

Each request is timed from sending to the parsed answer. A non-200 answer, any
GraphQL `errors`, a transport error, a null order (another customer's order is
answered null), another order than the one asked for or a short page is an error: it
is counted (by kind), left out of the latency and the rate, printed loudly, and makes
the bench exit with status 1.

The client runs in this process on the same cores as the server (and PostgreSQL and
RabbitMQ): the figures are a lower bound of what the server alone could answer. The
CPU seconds each side spent while measuring are reported beside them, and a measurement
during which other processes took more than a tenth of the cores is marked disturbed.

    python bench/api.py [--orders 500] [--concurrency 16] [--seconds 10] [--warmup 2] [--runs 3]
        [--stores sqlite,postgres] [--auth both|off|on] [--wait-quiet 120]

Prints one JSON document on stdout (per store and per query: medians of --runs runs,
and every run) and a human summary on stderr. DATABASE_URL and AMQP_URL name the
servers (default the local ones).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput.stores import delete_namespace
from infra.cli.demo import ADDRESS, PLACE, TERMINAL
from infra.messaging.consumers import SAGA_QUEUE
from infra.runtime import CONTEXT_ROLES, run_event_loop
from infra.settings import PostgresDsn, Settings
from read_api.identity import CUSTOMER, mint_token

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
STORES = {
    "sqlite": "embedded: SQLite + in-process bus, every role in one process",
    "postgres": "PostgreSQL + RabbitMQ, every role in one process",
}
AUTH = {
    "both": "dev mode (no token) and required mode (customer tokens)",
    "off": "dev mode only (no token)",
    "on": "required mode only (customer tokens)",
}
FAILURE_RATES = {
    name: Settings.model_fields[name].default
    for name in ("payment_failure_rate", "shipping_failure_rate", "notification_failure_rate")
}
QUEUES = (*CONTEXT_ROLES, SAGA_QUEUE)
PAGE_SIZE = 20
SETTLE_S = 2.0
PLACE_ATTEMPTS = 3
POLL_S = 0.5
ORDER_Q, PAGE_Q, TOKEN_Q = "order", f"orders_first_{PAGE_SIZE}", "order_with_token"

ORDER_FIELDS = """
fragment OrderFields on Order {
  id customerId status totalAmount currency failureReason createdAt updatedAt version
  items { productId productName quantity unitPrice }
  shippingAddress { street city state zipCode country }
  payment { id status amount currency transactionId refundedAmount }
  shipment { id status trackingNumber carrier }
  saga { id status currentStep steps { name status attempts } }
}"""
ORDER = "query Order($id: ID!) { order(id: $id) { ...OrderFields } }" + ORDER_FIELDS
ORDERS = """
query Orders($first: Int!) {
  orders(first: $first) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ...OrderFields } }
  }
}""" + ORDER_FIELDS
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
class Config:
    orders: int
    concurrency: int
    seconds: float
    warmup: float
    runs: int
    placers: int
    timeout: float
    order_seed: int
    failure_seed: int
    wait_quiet: float
    auth: str
    database_url: str
    amqp_url: str

    @property
    def server(self) -> PostgresDsn:
        return PostgresDsn.parse(self.database_url)

    @property
    def customers(self) -> int:
        """One customer per client, unless there are fewer orders than clients."""
        return min(self.concurrency, self.orders)


class RunFailed(Exception):
    """The run could not be carried out: the server did not start, or the orders did not finish."""


# --------------------------------------------------------------------------------------
# Stores: a fresh one per run, removed afterwards
# --------------------------------------------------------------------------------------


def server_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any store, broker or auth setting of its own, plus `extra`."""
    own = ("DATABASE_URL", "AMQP_URL", "BUS_NAMESPACE", "DATA_DIR")
    # An inherited AUTH_* (an issuer, another key, AUTH_MODE) would change what the server accepts:
    # the bench chooses the mode itself and mints the tokens it sends.
    env = {k: v for k, v in os.environ.items()
           if k not in own and not k.startswith(("DB_", "RABBITMQ_", "AUTH_"))}
    env.update({
        "FAILURE_SEED": "0",
        **{name.upper(): str(value) for name, value in FAILURE_RATES.items()},
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    })
    return env


@contextlib.contextmanager
def fresh_store(store: str, config: Config, work: Path) -> Iterator[dict[str, str]]:
    """The server's environment for a new SQLite directory, or a new database and vhost."""
    seed = {"FAILURE_SEED": str(config.failure_seed), "ADMIN_TOKEN": uuid.uuid4().hex}
    if store == "sqlite":
        yield server_environment(DATA_DIR=str(work / "data"), **seed)
        return
    server = config.server
    name = f"bench_api_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    settle(config)
    with admin_connection(server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = PostgresDsn(server.host, server.port, name, server.user, server.password)
    namespace = f"bench{uuid.uuid4().hex[:10]}"
    vhost = make_vhost(config.amqp_url, name)
    amqp_url = config.amqp_url if vhost is None else in_vhost(config.amqp_url, vhost)
    try:
        env = server_environment(DATABASE_URL=dsn.url, AMQP_URL=amqp_url, BUS_NAMESPACE=namespace, **seed)
        for command in ("migrate", "seed"):
            cli(command, env, work)
        yield {**env, "CREATE_TABLE": "n"}
    finally:
        try:
            if vhost is None:
                delete_namespace(amqp_url, namespace)
            else:
                rabbitmqctl("delete_vhost", vhost)
        finally:
            with admin_connection(server) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def cli(command: str, env: dict[str, str], work: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", command], env=env, cwd=work,
        capture_output=True, text=True, timeout=180, check=False,
    )
    if done.returncode != 0:
        raise RunFailed(f"saga {command} failed: {done.stdout[-1000:]}{done.stderr[-2000:]}")


def settle(config: Config) -> None:
    """Have PostgreSQL flush the last run's dirty pages now, not in the middle of a measurement."""
    with admin_connection(config.server) as conn:
        conn.execute("CHECKPOINT")
    time.sleep(SETTLE_S)


def admin_connection(server: PostgresDsn, within: float = 120.0) -> psycopg.Connection[Any]:
    """A connection to the server's own database, waiting while others hold every connection slot."""
    deadline = time.monotonic() + within
    while True:
        try:
            return psycopg.connect(server.url, autocommit=True)
        except psycopg.OperationalError as error:
            if "too many clients" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def rabbitmqctl(*args: str) -> bool:
    try:
        done = subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def make_vhost(amqp_url: str, name: str) -> str | None:
    """A vhost of the run's own on the local broker (as tests/conftest.py makes), or None."""
    parts = urlsplit(amqp_url)
    if shutil.which("rabbitmqctl") is None or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    user = unquote(parts.username or "guest")
    if rabbitmqctl("add_vhost", name) and rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*"):
        return name
    rabbitmqctl("delete_vhost", name)
    return None


def in_vhost(url: str, vhost: str) -> str:
    return urlsplit(url)._replace(path="/" + quote(vhost, safe="")).geturl()


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RunFailed(f"saga serve exited with {self.process.returncode}:\n{self.tail()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(env: dict[str, str], work: Path, name: str) -> Iterator[Server]:
    """`saga serve` (every role) on a free loopback port, once it is ready; stopped with SIGINT at the end."""
    port = free_port()
    log_path = work / f"serve-{name}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=work, stdout=log_file, stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_until_ready(server, within=120)
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_until_ready(server: Server, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            if httpx.get(f"{server.base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RunFailed(f"saga serve was not ready within {within} s:\n{server.tail()}")


# --------------------------------------------------------------------------------------
# Realistic rows: orders placed through GraphQL for a few customers and followed to their end
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Tokens: required mode with a key of the run's own
# --------------------------------------------------------------------------------------


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


async def check_required(base: str, shop: Shop, tokens: list[str]) -> None:
    """The server really asks for a token, and a customer's token does not open another's order."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        variables = {"id": shop.orders_of(0)[0]}
        anonymous = (await client.post("/graphql", json={"query": ORDER, "variables": variables})).json()
        codes = [(e.get("extensions") or {}).get("code") for e in anonymous.get("errors") or []]
        if "UNAUTHENTICATED" not in codes:
            raise RunFailed(f"required mode answered order(id) without a token: "
                            f"{json.dumps(anonymous)[:300]}")
        if len(shop.customers) > 1:
            other = await graphql(client, ORDER, variables, {"Authorization": f"Bearer {tokens[1]}"})
            if other["order"] is not None:
                raise RunFailed("a customer's token was answered with another customer's order")


# --------------------------------------------------------------------------------------
# Measuring one query
# --------------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(detail[:300])


Body = Callable[[random.Random, int], dict[str, Any]]
"""The request a client sends next: (its random generator, its index) -> the GraphQL request."""
Check = Callable[[dict[str, Any], dict[str, Any]], str | None]
"""What is wrong with an answer: (the request, the answer's data) -> a kind of error, or None."""
Headers = Callable[[int], dict[str, str]]
"""The headers a client sends with each request: its index -> headers."""


def no_token(_: int) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class Workload:
    name: str
    body: Body
    check: Check
    headers: Headers = no_token


def workload(name: str, shop: Shop, tokens: list[str] | None = None) -> Workload:
    """`order` and `order_with_token` differ only in the token each client sends."""
    def an_order(rng: random.Random, client: int) -> dict[str, Any]:
        return {"query": ORDER, "variables": {"id": rng.choice(shop.orders_of(client))}}

    def the_page(_: random.Random, __: int) -> dict[str, Any]:
        return {"query": ORDERS, "variables": {"first": PAGE_SIZE}}

    def the_order_asked(request: dict[str, Any], data: dict[str, Any]) -> str | None:
        order = data.get("order")
        if not order:
            return "null order"
        return None if order["id"] == request["variables"]["id"] else "another order"

    def page_full(_: dict[str, Any], data: dict[str, Any]) -> str | None:
        edges = data["orders"]["edges"]
        return None if len(edges) == min(PAGE_SIZE, shop.count) else f"short page ({len(edges)} orders)"

    def bearer(client: int) -> dict[str, str]:
        assert tokens is not None
        return {"Authorization": f"Bearer {tokens[client % len(tokens)]}"}

    if name == PAGE_Q:
        return Workload(name, the_page, page_full)
    return Workload(name, an_order, the_order_asked, no_token if tokens is None else bearer)


async def ask(
    client: httpx.AsyncClient, workload: Workload, rng: random.Random, index: int, tally: Tally
) -> None:
    request = workload.body(rng, index)
    headers = workload.headers(index)
    started = time.perf_counter()
    try:
        response = await client.post("/graphql", json=request, headers=headers)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as error:
        tally.error(type(error).__name__, repr(error))
        return
    elapsed = time.perf_counter() - started
    if body is None:
        tally.error(f"HTTP {response.status_code}", response.text)
    elif body.get("errors"):
        tally.error("GraphQL errors", json.dumps(body["errors"]))
    elif (problem := workload.check(request, body.get("data") or {})) is not None:
        tally.error(problem, json.dumps(body)[:300])
    else:
        tally.latencies.append(elapsed)


async def hammer(
    base: str, workload: Workload, clients: int, seconds: float, seed: int
) -> tuple[Tally, float]:
    """`clients` tasks asking one after another for `seconds`; the tally and the wall time they took."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    tally = Tally()
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        stop_at = time.perf_counter() + seconds

        async def one_client(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            while time.perf_counter() < stop_at:
                await ask(client, workload, rng, index, tally)

        started = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in range(clients)))
        return tally, time.perf_counter() - started


async def measure(
    base: str, workload: Workload, config: Config, server_pid: int, store: str, run: int
) -> dict[str, Any]:
    await hammer(base, workload, config.concurrency, config.warmup, seed=run)  # connections, caches
    await until_quiet(server_pid, SERVICES[store], config.wait_quiet)
    meter = CpuMeter(server_pid, ours=SERVICES[store])
    tally, wall = await hammer(base, workload, config.concurrency, config.seconds, seed=run + 1)
    cpu = meter.stop(wall)
    ms = sorted(x * 1000 for x in tally.latencies)
    errors = sum(tally.errors.values())
    return {
        "requests": len(ms),
        "requests_per_s": round(len(ms) / wall, 1),
        "latency_ms": {
            "p50": rounded(pct(ms, 50)), "p95": rounded(pct(ms, 95)), "p99": rounded(pct(ms, 99)),
            "max": rounded(ms[-1] if ms else None),
        },
        "errors": errors,
        "error_kinds": dict(tally.errors),
        "error_samples": tally.samples,
        "wall_s": round(wall, 2),
        "server_cpu_ms_per_request": rounded(1000 * cpu["server_s"] / len(ms) if ms else None, 2),
        "cpu": cpu,
        "disturbed": cpu["others_s"] > DISTURBED_SHARE * wall * (os.cpu_count() or 1),
    }


async def until_quiet(server_pid: int, ours: frozenset[str], within: float) -> None:
    """Wait (up to `within` seconds) until other processes leave the cores alone for a second."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        meter = CpuMeter(server_pid, ours)
        await asyncio.sleep(1.0)
        if meter.stop(1.0)["others_s"] <= DISTURBED_SHARE * (os.cpu_count() or 1):
            return
    if within > 0:
        print(f"  the host did not quieten within {within:g} s: measuring anyway", file=sys.stderr)


def pct(values: list[float], p: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------------------
# CPU: who used the shared cores while measuring
# --------------------------------------------------------------------------------------


TICK = os.sysconf("SC_CLK_TCK")
SERVICES = {"sqlite": frozenset[str](), "postgres": frozenset({"postgres", "beam.smp"})}
KERNEL = ("kworker", "ksoftirqd", "kdamond", "rcu", "migration", "kcompactd", "jbd2", "kswapd")
DISTURBED_SHARE = 0.1
"""A measurement is disturbed when other processes took more than this share of the cores."""


def host_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the host since boot."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def cpu_by_process() -> dict[str, float]:
    """CPU seconds since each live process started (its threads included), by "pid:command"."""
    seconds: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = (entry / "stat").read_text()
                name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
                seconds[f"{entry.name}:{name}"] = (int(rest[11]) + int(rest[12])) / TICK
    return seconds


class CpuMeter:
    """CPU seconds of the server, of this bench (the client) and of the rest by command; host busy %.

    `others_s` is what processes that are not part of the measurement spent: not the
    server, the client, the services of the store (`ours`) nor the kernel's threads.
    """

    def __init__(self, server_pid: int, ours: frozenset[str]) -> None:
        self.server_pid = str(server_pid)
        self.ours = ours | {"server", "client (this bench)"}
        self.host = host_ticks()
        self.procs = cpu_by_process()
        self.bench = self._own()

    @staticmethod
    def _own() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def stop(self, wall: float) -> dict[str, Any]:
        busy0, total0 = self.host
        busy1, total1 = host_ticks()
        by_name: defaultdict[str, float] = defaultdict(float)
        for key, value in cpu_by_process().items():
            pid, name = key.split(":", 1)
            if pid != str(os.getpid()):  # this process is counted below
                by_name["server" if pid == self.server_pid else name] += value - self.procs.get(key, 0.0)
        by_name["client (this bench)"] = self._own() - self.bench
        others = sum(v for k, v in by_name.items() if k not in self.ours and not k.startswith(KERNEL))
        return {
            "host_busy_pct": round(100 * (busy1 - busy0) / max(1, total1 - total0)),
            "cores": os.cpu_count(),
            "server_s": round(by_name["server"], 2),
            "client_s": round(by_name["client (this bench)"], 2),
            "others_s": round(others, 1),
            "by_process_s": {k: round(v, 1) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])[:6]
                             if v >= 0.05},
        }


# --------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------


def plan(auth: str, run: int) -> list[tuple[str, list[str]]]:
    """The auth modes of this run, in the order they are measured, each with the queries it measures."""
    dev, required = ("dev", [ORDER_Q, PAGE_Q]), ("required", [TOKEN_Q])
    if auth != "both":
        return [dev] if auth == "off" else [required]
    # The two order(id) measurements are compared, so they run back to back, and which one goes first
    # alternates from run to run, so that neither always meets the host (and the store) first.
    return [("dev", [PAGE_Q, ORDER_Q]), required] if run % 2 == 0 else [required, dev]


def one_run(store: str, config: Config, run: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        work = Path(tmp)
        placed, measured = measured_modes(store, config, run, work)
    queries = {name: measured[name] for name in (ORDER_Q, PAGE_Q, TOKEN_Q) if name in measured}
    result: dict[str, Any] = {"store": store, "orders": placed, "queries": queries}
    if (cost := auth_cost(queries)) is not None:
        result["auth_cost"] = cost
    return result


def measured_modes(store: str, config: Config, run: int, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The orders placed, and each query's figures, on one fresh store."""
    with fresh_store(store, config, work) as env:
        with serving(env, work, "prepare") as server:
            placed, shop = run_event_loop(prepare(server.base, config, env["ADMIN_TOKEN"]))
            server.check_alive()
        # Each mode is measured on a server started afresh on the same store, so that neither
        # inherits the heap and caches of the server that ran the sagas.
        measured: dict[str, Any] = {}
        for mode, names in plan(config.auth, run):
            settle_store(store, config)
            key = TokenKey(secrets.token_hex(32))
            mode_env = env if mode == "dev" else {**env, "AUTH_JWT_SECRET": key.auth_jwt_secret}
            with serving(mode_env, work, mode) as server:
                tokens = customer_tokens(key, shop, config) if mode == "required" else None
                measured |= run_event_loop(_measured(server, shop, tokens, names, store, config, run))
                server.check_alive()
    return placed, measured


def settle_store(store: str, config: Config) -> None:
    if store == "postgres":
        settle(config)
    else:
        time.sleep(SETTLE_S)


async def _measured(
    server: Server, shop: Shop, tokens: list[str] | None, names: list[str], store: str, config: Config,
    run: int,
) -> dict[str, Any]:
    if tokens is not None:
        await check_required(server.base, shop, tokens)
    return {name: await measure(server.base, workload(name, shop, tokens), config, server.process.pid,
                                store, run)
            for name in names}


def auth_cost(queries: dict[str, Any]) -> dict[str, Any] | None:
    """`order` with a customer token (required mode) against without (dev mode), in one run."""
    without, with_token = queries.get(ORDER_Q), queries.get(TOKEN_Q)
    if without is None or with_token is None:
        return None
    return {
        "requests_per_s_ratio": ratio(with_token["requests_per_s"], without["requests_per_s"]),
        "server_cpu_ratio": ratio(with_token["server_cpu_ms_per_request"],
                                  without["server_cpu_ms_per_request"]),
        "p99_ms": {"without_token": without["latency_ms"]["p99"],
                   "with_token": with_token["latency_ms"]["p99"]},
        "disturbed": without["disturbed"] or with_token["disturbed"],
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if not numerator or not denominator else round(numerator / denominator, 3)


def run_store(store: str, config: Config) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for index in range(config.runs):
        print(f"[{store}] run {index + 1}/{config.runs}: {STORES[store]}, {config.orders} orders, "
              f"{config.concurrency} clients, {config.seconds:g} s a query, {AUTH[config.auth]}",
              file=sys.stderr, flush=True)
        try:
            result = one_run(store, config, index)
        except Exception as error:  # reported, and the bench fails; the other runs still go
            result = {"store": store, "error": f"{type(error).__name__}: {error}"}
        runs.append(result)
        print(line_of(result), file=sys.stderr, flush=True)
    out: dict[str, Any] = {"what": STORES[store], "median": median_of(runs)}
    if (cost := median_cost(runs)) is not None:
        out["auth_cost"] = cost
    return {**out, "runs": runs}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {"runs_ok": len(ok), "runs_failed": len(runs) - len(ok)}
    for name in ok[0]["queries"] if ok else ():
        each = [r["queries"][name] for r in ok]
        out[name] = {
            "requests_per_s": round(statistics.median(q["requests_per_s"] for q in each), 1),
            "latency_ms": {
                k: rounded(statistics.median(q["latency_ms"][k] for q in each))
                for k in ("p50", "p95", "p99", "max") if all(q["latency_ms"][k] is not None for q in each)
            },
            "server_cpu_ms_per_request": rounded(
                statistics.median(q["server_cpu_ms_per_request"] or 0 for q in each), 2
            ),
            "errors": sum(q["errors"] for q in each),
            "disturbed_runs": sum(1 for q in each if q["disturbed"]),
        }
    return out


def median_cost(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The medians of the runs' own ratios, each of two measurements made back to back, and of their figures.

    A disturbed run's ratio compares a measurement the host took cores from with one it did not, so
    the medians are of the undisturbed runs, unless every run was disturbed.
    """
    measured = [r for r in runs if "auth_cost" in r]
    if not measured:
        return None
    clean = [r for r in measured if not r["auth_cost"]["disturbed"]] or measured
    costs = [r["auth_cost"] for r in clean]

    def median(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return rounded(statistics.median(known), 3) if len(known) == len(values) else None

    def of_both(figure: Callable[[dict[str, Any]], float | None]) -> dict[str, float | None]:
        return {"without_token": median([figure(r["queries"][ORDER_Q]) for r in clean]),
                "with_token": median([figure(r["queries"][TOKEN_Q]) for r in clean])}

    return {
        "requests_per_s_ratio": median([c["requests_per_s_ratio"] for c in costs]),
        "server_cpu_ratio": median([c["server_cpu_ratio"] for c in costs]),
        "requests_per_s": of_both(lambda q: q["requests_per_s"]),
        "p99_ms": of_both(lambda q: q["latency_ms"]["p99"]),
        "runs": len(clean),
        "disturbed_runs": sum(1 for r in measured if r["auth_cost"]["disturbed"]),
    }


def line_of(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"  RUN FAILED: {r['error']}"
    o = r["orders"]
    lines = [f"  {o['placed']} orders of {o['customers']} customers placed and ended in "
             f"{o['place_and_finish_s']} s ({o['completed']} completed, {o['cancelled']} cancelled)"]
    for name, q in r["queries"].items():
        lat = q["latency_ms"]
        lines.append(f"  {name}: {q['requests_per_s']:.0f} requests/s; latency p50 {lat['p50']} "
                     f"p95 {lat['p95']} p99 {lat['p99']} ms; host {q['cpu']['host_busy_pct']}% busy, cpu-s "
                     f"{q['cpu']['by_process_s']}")
        if q["disturbed"]:
            lines.append(f"  !!! {name}: DISTURBED: other processes took {q['cpu']['others_s']} CPU-s "
                         "while it was measured; its figures are not comparable")
        if q["errors"]:
            lines.append(f"  !!! {name}: {q['errors']} ERRORS {q['error_kinds']}: {q['error_samples'][:2]}")
    if "auth_cost" in r:
        lines.append(f"  {cost_line(r['auth_cost'])}")
    return "\n".join(lines)


def cost_line(cost: dict[str, Any]) -> str:
    p99 = cost["p99_ms"]
    return (f"a customer token: {cost.get('requests_per_s_ratio')}x the requests/s, "
            f"{cost.get('server_cpu_ratio')}x the server CPU a request; p99 {p99['with_token']} ms with, "
            f"{p99['without_token']} ms without")


def summarize(report: dict[str, Any]) -> None:
    lines = [f"api: {report['orders']} orders, {report['concurrency']} clients, {report['seconds']:g} s a "
             f"query, auth {report['auth']}, medians of {report['runs']} run(s); client and server share "
             f"{report['cores']} cores"]
    for store, result in report["stores"].items():
        m = result["median"]
        for name, q in m.items():
            if not isinstance(q, dict):
                continue
            lat = q["latency_ms"]
            line = (f"  {store} {name}: {q['requests_per_s']:.0f} requests/s, p50 {lat.get('p50')} "
                    f"p99 {lat.get('p99')} ms, server {q['server_cpu_ms_per_request']} CPU-ms a request")
            if q["errors"]:
                line += f"  !!! {q['errors']} ERRORS"
            if q["disturbed_runs"]:
                line += f"  ({q['disturbed_runs']} disturbed run(s))"
            lines.append(line)
        if "auth_cost" in result:
            cost = result["auth_cost"]
            disturbed = (f"  (median of {cost['runs']} run(s); {cost['disturbed_runs']} disturbed)"
                         if cost["disturbed_runs"] else "")
            lines.append(f"  {store} {cost_line(cost)}{disturbed}")
        if m["runs_failed"]:
            lines.append(f"  !!! {store}: {m['runs_failed']} RUN(S) FAILED")
    if report["errors"]:
        lines.append(f"!!! {report['errors']} REQUESTS FAILED (non-200, GraphQL errors or wrong answers): "
                     "these figures are not valid")
    else:
        lines.append("  no request failed")
    print("\n".join(lines), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", "-n", type=int, default=500, help="orders placed before measuring (500)")
    parser.add_argument("--concurrency", "-c", type=int, default=16,
                        help="concurrent clients, each a customer of its own (16)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per query (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each (2)")
    parser.add_argument("--runs", type=int, default=3, help="runs per store; medians are reported (3)")
    parser.add_argument("--stores", default="sqlite,postgres", help="any of sqlite,postgres (both)")
    parser.add_argument("--auth", choices=tuple(AUTH), default="both",
                        help="both: order(id) without a token (dev mode) and with a customer token "
                             "(required mode), and their ratio; off: dev mode only; on: required mode "
                             "only (both)")
    parser.add_argument("--placers", type=int, default=16, help="placeOrder requests at a time (16)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds for placing and ending the orders (600)")
    parser.add_argument("--wait-quiet", type=float, default=120.0,
                        help="before each measurement, wait up to this many seconds for other processes "
                             "to leave the cores alone (120; 0: do not wait)")
    parser.add_argument("--order-seed", type=int, default=7)
    parser.add_argument("--failure-seed", type=int, default=42)
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if set(stores) - set(STORES) or min(args.orders, args.concurrency, args.runs, args.placers) < 1:
        parser.error(f"bad arguments (stores are {', '.join(STORES)})")
    config = Config(
        orders=args.orders, concurrency=args.concurrency, seconds=args.seconds, warmup=args.warmup,
        runs=args.runs, placers=args.placers, timeout=args.timeout, order_seed=args.order_seed,
        failure_seed=args.failure_seed, wait_quiet=args.wait_quiet, auth=args.auth,
        database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        amqp_url=os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL,
    )
    report: dict[str, Any] = {
        "bench": "api", "orders": config.orders, "customers": config.customers,
        "concurrency": config.concurrency, "seconds": config.seconds, "warmup_s": config.warmup,
        "runs": config.runs, "auth": config.auth, "wait_quiet_s": config.wait_quiet,
        "order_seed": config.order_seed, "failure_seed": config.failure_seed, "failure_rates": FAILURE_RATES,
        "cores": os.cpu_count(), "load_1min_at_start": os.getloadavg()[0],
        "note": "client (this process) and server share the cores: the figures are a lower bound",
        "stores": {},
    }
    try:
        for store in stores:
            report["stores"][store] = run_store(store, config)
    except KeyboardInterrupt:
        report["interrupted"] = True
    report["errors"] = sum(q["errors"] for m in report["stores"].values()
                           for q in m["median"].values() if isinstance(q, dict))
    failed_runs = sum(m["median"]["runs_failed"] for m in report["stores"].values())
    report["ok"] = not report["errors"] and not failed_runs and not report.get("interrupted")
    summarize(report)
    print(json.dumps(report, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""GraphQL read throughput: requests/s and latency of `order(id)` and `orders(first: 20)`.

Each run starts the real server (`python -m infra.cli serve`, every role in one
process) as a subprocess on a fresh, throw-away store:

  sqlite    the embedded default: SQLite files in a temp DATA_DIR, the in-process bus
  postgres  PostgreSQL + RabbitMQ: a new database (migrated and seeded, then dropped)
            and a RabbitMQ vhost of its own (deleted afterwards) with a random namespace

with the failure rates at their defaults (a fixed FAILURE_SEED). It restocks the
catalogue through the `restock` mutation, places --orders orders through GraphQL
`placeOrder` with the demo load generator (infra/demo.py), waits until every one is
COMPLETED or CANCELLED and the projections have caught up, and then, for each query,
sends it from --concurrency clients (tasks sharing one httpx.AsyncClient, HTTP
keep-alive) for --warmup seconds not counted and then --seconds counted:

  order             order(id) of a random placed order, with its items, address,
                    payment, shipment and saga steps
  orders_first_20   orders(first: 20), the same selection for each of the 20 newest orders

Each request is timed from sending to the parsed answer. A non-200 answer, any
GraphQL `errors`, a transport error, a null order or a short page is an error: it is
counted (by kind), left out of the latency and the rate, printed loudly, and makes the
bench exit with status 1.

The client runs in this process on the same cores as the server (and PostgreSQL and
RabbitMQ): the figures are a lower bound of what the server alone could answer. The
CPU seconds each side spent while measuring are reported beside them, and a measurement
during which other processes took more than a tenth of the cores is marked disturbed.

    python bench/api.py [--orders 500] [--concurrency 16] [--seconds 10] [--warmup 2] [--runs 3]
        [--stores sqlite,postgres] [--wait-quiet 120]

Prints one JSON document on stdout (per store and per query: medians of --runs runs,
and every run) and a human summary on stderr. DATABASE_URL and AMQP_URL name the
servers (default the local ones).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import resource
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
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import psycopg
from psycopg import sql
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.saga_throughput import delete_namespace
from infra.consumers import SAGA_QUEUE
from infra.demo import finished_line, run_demo
from infra.runtime import CONTEXT_ROLES, run_event_loop
from infra.settings import PostgresDsn, Settings

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
STORES = {
    "sqlite": "embedded: SQLite + in-process bus, every role in one process",
    "postgres": "PostgreSQL + RabbitMQ, every role in one process",
}
FAILURE_RATES = {
    name: Settings.model_fields[name].default
    for name in ("payment_failure_rate", "shipping_failure_rate", "notification_failure_rate")
}
QUEUES = (*CONTEXT_ROLES, SAGA_QUEUE)
PAGE_SIZE = 20
SETTLE_S = 2.0

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
    database_url: str
    amqp_url: str

    @property
    def server(self) -> PostgresDsn:
        return PostgresDsn.parse(self.database_url)


class RunFailed(Exception):
    """The run could not be carried out: the server did not start, or the orders did not finish."""


# --------------------------------------------------------------------------------------
# Stores: a fresh one per run, removed afterwards
# --------------------------------------------------------------------------------------


def server_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any store or broker of its own, plus `extra`."""
    own = ("DATABASE_URL", "AMQP_URL", "BUS_NAMESPACE", "DATA_DIR")
    env = {k: v for k, v in os.environ.items() if k not in own and not k.startswith(("DB_", "RABBITMQ_"))}
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
                asyncio.run(delete_namespace(amqp_url, namespace))
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(env: dict[str, str], work: Path) -> Iterator[Server]:
    """`saga serve` (every role) on a free port, once it is ready; stopped with SIGINT at the end."""
    port = free_port()
    log_path = work / "serve.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "serve", "--port", str(port)],
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
        if server.process.poll() is not None:
            raise RunFailed(f"saga serve exited with {server.process.returncode}:\n{server.tail()}")
        try:
            if httpx.get(f"{server.base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RunFailed(f"saga serve was not ready within {within} s:\n{server.tail()}")


# --------------------------------------------------------------------------------------
# Realistic rows: orders placed through GraphQL and followed to their end
# --------------------------------------------------------------------------------------


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


async def prepare(base: str, config: Config, token: str) -> dict[str, Any]:
    """Restock, place the orders, wait for every one to end and the projections to catch up."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        products = [p["id"] for p in (await graphql(client, PRODUCTS))["products"]]
        for product in products:  # 3 units a line at most: no order is short of stock
            variables = {"id": product, "quantity": 3 * config.orders + 100}
            answer = await graphql(client, RESTOCK, variables, {"Authorization": f"Bearer {token}"})
            if answer["restock"]["errors"]:
                raise RunFailed(f"restock refused: {answer['restock']['errors']}")
        started = time.perf_counter()
        quiet = Console(file=io.StringIO())
        summary = await run_demo(base, config.orders, config.placers, config.timeout, quiet,
                                 seed=config.order_seed)
        elapsed = time.perf_counter() - started
        if summary.finished != config.orders:
            raise RunFailed(f"the orders did not all end: {finished_line(summary)}")
        statuses = await order_statuses(client)
        if len(statuses) != config.orders:
            raise RunFailed(f"orders lists {len(statuses)} orders, {config.orders} were placed")
        await projections_caught_up(client, within=60)
    return {
        "placed": summary.placed, "completed": summary.completed, "cancelled": summary.cancelled_total,
        "place_and_finish_s": round(elapsed, 1), "ids": list(statuses),
    }


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


Body = Callable[[random.Random], dict[str, Any]]
Check = Callable[[dict[str, Any]], str | None]


@dataclass(frozen=True)
class Workload:
    name: str
    body: Body
    check: Check


def workloads(ids: list[str]) -> list[Workload]:
    def an_order(rng: random.Random) -> dict[str, Any]:
        return {"query": ORDER, "variables": {"id": rng.choice(ids)}}

    def the_page(_: random.Random) -> dict[str, Any]:
        return {"query": ORDERS, "variables": {"first": PAGE_SIZE}}

    def order_found(data: dict[str, Any]) -> str | None:
        return None if data.get("order") else "null order"

    def page_full(data: dict[str, Any]) -> str | None:
        edges = data["orders"]["edges"]
        return None if len(edges) == min(PAGE_SIZE, len(ids)) else f"short page ({len(edges)} orders)"

    return [
        Workload("order", an_order, order_found),
        Workload(f"orders_first_{PAGE_SIZE}", the_page, page_full),
    ]


async def ask(client: httpx.AsyncClient, workload: Workload, rng: random.Random, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        response = await client.post("/graphql", json=workload.body(rng))
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as error:
        tally.error(type(error).__name__, repr(error))
        return
    elapsed = time.perf_counter() - started
    if body is None:
        tally.error(f"HTTP {response.status_code}", response.text)
    elif body.get("errors"):
        tally.error("GraphQL errors", json.dumps(body["errors"]))
    elif (problem := workload.check(body.get("data") or {})) is not None:
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
                await ask(client, workload, rng, tally)

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


def one_run(store: str, config: Config, run: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp, \
            fresh_store(store, config, Path(tmp)) as env, serving(env, Path(tmp)) as server:
        return run_event_loop(_measured(server, env, store, config, run))


async def _measured(
    server: Server, env: dict[str, str], store: str, config: Config, run: int
) -> dict[str, Any]:
    placed = await prepare(server.base, config, env["ADMIN_TOKEN"])
    ids = placed.pop("ids")
    if store == "postgres":
        await asyncio.to_thread(settle, config)
    else:
        await asyncio.sleep(SETTLE_S)
    queries = {}
    for workload in workloads(ids):
        queries[workload.name] = await measure(server.base, workload, config, server.process.pid, store, run)
    if server.process.poll() is not None:
        raise RunFailed(f"saga serve exited with {server.process.returncode}:\n{server.tail()}")
    return {"store": store, "orders": placed, "queries": queries}


def run_store(store: str, config: Config) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for index in range(config.runs):
        print(f"[{store}] run {index + 1}/{config.runs}: {STORES[store]}, {config.orders} orders, "
              f"{config.concurrency} clients, {config.seconds:g} s a query", file=sys.stderr, flush=True)
        try:
            result = one_run(store, config, index)
        except Exception as error:  # reported, and the bench fails; the other runs still go
            result = {"store": store, "error": f"{type(error).__name__}: {error}"}
        runs.append(result)
        print(line_of(result), file=sys.stderr, flush=True)
    return {"what": STORES[store], "median": median_of(runs), "runs": runs}


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


def line_of(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"  RUN FAILED: {r['error']}"
    o = r["orders"]
    lines = [f"  {o['placed']} orders placed and ended in {o['place_and_finish_s']} s "
             f"({o['completed']} completed, {o['cancelled']} cancelled)"]
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
    return "\n".join(lines)


def summarize(report: dict[str, Any]) -> None:
    lines = [f"api: {report['orders']} orders, {report['concurrency']} clients, {report['seconds']:g} s a "
             f"query, medians of {report['runs']} run(s); client and server share {report['cores']} cores"]
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
    parser.add_argument("--concurrency", "-c", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per query (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each (2)")
    parser.add_argument("--runs", type=int, default=3, help="runs per store; medians are reported (3)")
    parser.add_argument("--stores", default="sqlite,postgres", help="any of sqlite,postgres (both)")
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
        failure_seed=args.failure_seed, wait_quiet=args.wait_quiet,
        database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        amqp_url=os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL,
    )
    report: dict[str, Any] = {
        "bench": "api", "orders": config.orders, "concurrency": config.concurrency,
        "seconds": config.seconds, "warmup_s": config.warmup, "runs": config.runs,
        "wait_quiet_s": config.wait_quiet, "order_seed": config.order_seed,
        "failure_seed": config.failure_seed, "failure_rates": FAILURE_RATES,
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

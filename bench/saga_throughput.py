"""Saga throughput: N orders through the whole order-fulfilment saga, end to end.

Every run works in a fresh, throw-away store (SQLite files in a temp dir, or a new
PostgreSQL database and a random RabbitMQ namespace), places N random orders (1-2
lines of the seed catalogue, 1-3 units each, from a fixed seed) from a few threads,
waits until every order's saga has completed or compensated, then reads the stores:

  completed_sagas_per_s   completed sagas / (first placement -> last terminal saga seen)
  sagas_per_s             every terminal saga (completed or compensated), same clock
  latency_ms              Order.Placed event timestamp -> the saga's terminal event timestamp

and checks its own outcomes: every order's saga terminal exactly once and its order
completed or cancelled to match, nothing reserved at rest, stock on hand down by
exactly what completed orders bought, and charged minus refunded equal to the
completed orders' totals. A failed check or a timeout fails the run (exit status 1).

Modes:
  a  the embedded default: SQLite files, the in-process bus, every role in one process
  b  every role in one process on PostgreSQL + RabbitMQ
  c  each role its own process (`python -m infra.cli.main serve --role R`) on PostgreSQL +
     RabbitMQ; orders are placed from this process through the Orders application
After the maximum-rate runs the peer (the same saga on the eventsourcing library's own
System runner, ../shared/bench/peer_es_saga.py) runs with the same N, and the ratios of
b and c to its completed sagas/s are reported. Then mode b (--paced-modes) runs again
with orders placed at a steady rate, half its measured maximum completed sagas/s (or
--rate), for the DESIGN bar: p99 under 1 s at half the maximum rate.

Each run also reports where its latency goes (the gaps between an order's consecutive
events in two applications: one per relay + bus + consumer hop), CPU seconds by process
(and by role in mode c), the peak PostgreSQL connections, and whether the AMQP client
lost its broker meanwhile (a broker restarted by someone else: "disturbed", the run still
verifies but its figures are not comparable).

Failures are simulated at the default rates (payment 0.1, shipping 0.05, notification
0.02) with a fixed FAILURE_SEED, so every mode sees the same outcomes; the seed products
are restocked generously first, so no order is short of stock.

    python bench/saga_throughput.py [--orders 2000] [--modes a,b,c] [--runs 1] [--skip-peer]
        [--rate R] [--paced-modes b] [--paced-only] [--placers 4] [--timeout 600] [--profile DIR]

Prints one JSON document on stdout (medians of --runs runs, and every run) and a human
summary on stderr. DATABASE_URL and AMQP_URL name the servers (default the local ones).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import multiprocessing
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
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import psycopg
from eventsourcing.utils import get_topic
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from commands.base import ContextApplication
from commands.base import stored_state as decode_state
from commands.inventory import SEED_CATALOGUE, Restock
from commands.orders import OrderItem, PlaceOrder
from domain.order import Order
from domain.payment import Payment
from domain.stock import MAX_RESTOCK
from domain.values import Address
from infra.bootstrap import System, bootstrap
from infra.messaging.bus import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, RETRY_DELAYS_SECONDS, Bus
from infra.messaging.consumers import SAGA_QUEUE
from infra.messaging.rabbitmq import RabbitBus
from infra.runtime import CONTEXT_ROLES, Runtime, make_bus, run_event_loop
from infra.settings import PostgresDsn, Settings
from process_managers.saga import OrderFulfillment

log = logging.getLogger("bench.saga_throughput")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PEER = REPO.parent / "shared" / "bench" / "peer_es_saga.py"

WORKER_ROLES = (*CONTEXT_ROLES, "saga", "relay")
QUEUES = (*CONTEXT_ROLES, SAGA_QUEUE)
MODES = {
    "a": "embedded: SQLite + in-process bus, one process",
    "b": "PostgreSQL + RabbitMQ, every role in one process",
    "c": "PostgreSQL + RabbitMQ, one process per role",
}

ADDRESS = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")
FAILURE_RATES = {
    name: Settings.model_fields[name].default
    for name in ("payment_failure_rate", "shipping_failure_rate", "notification_failure_rate")
}

SAGA_TERMINAL_TOPICS = [get_topic(OrderFulfillment.Completed), get_topic(OrderFulfillment.Compensated)]
ORDER_TOPICS = [get_topic(Order.Placed), get_topic(Order.Completed), get_topic(Order.Cancelled)]
PAYMENT_TOPICS = [get_topic(Payment.Charged), get_topic(Payment.Refunded)]
PAGE = 2000


@dataclass(frozen=True)
class Config:
    orders: int
    runs: int
    placers: int
    timeout: float
    poll: float
    order_seed: int
    failure_seed: int
    database_url: str
    amqp_url: str
    profile: Path | None
    profile_gil: bool
    keep_logs: bool
    worker_pool_size: int | None

    @property
    def server(self) -> PostgresDsn:
        return PostgresDsn.parse(self.database_url)


class RunFailed(Exception):
    """The run could not be carried out (a worker died, the stores could not be made)."""


# --------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------


def make_orders(n: int, seed: int) -> list[PlaceOrder]:
    """N orders of 1-2 distinct seed products, 1-3 units each; the same for a given seed."""
    rng = random.Random(seed)
    products = [p.product_id for p in SEED_CATALOGUE]
    commands = []
    for _ in range(n):
        lines = rng.sample(products, rng.randint(1, 2))
        commands.append(PlaceOrder(
            command_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            customer_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            items=[OrderItem(product_id=p, quantity=rng.randint(1, 3)) for p in lines],
            shipping_address=ADDRESS,
        ))
    return commands


def stock_up(system: System, n: int) -> None:
    """List the seed catalogue and add more than N orders can take (3 units a line at most)."""
    system.inventory.seed()
    top_up = 3 * n + 100
    for product in SEED_CATALOGUE:
        left = top_up
        while left > 0:
            quantity = min(left, MAX_RESTOCK)
            system.inventory.restock(Restock(product_id=product.product_id, quantity=quantity))
            left -= quantity


# --------------------------------------------------------------------------------------
# Stores: a fresh one per run, removed afterwards
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_store(mode: str, config: Config) -> Iterator[Settings]:
    """Settings for a new SQLite directory, or a new database and bus namespace."""
    common: dict[str, Any] = {
        "_env_file": None,
        "failure_seed": config.failure_seed,
        "log_level": "WARNING",
        **FAILURE_RATES,
    }
    if mode == "a":
        with tempfile.TemporaryDirectory(prefix="bench_saga_") as tmp:
            yield Settings(**common, database_url=None, amqp_url=None, data_dir=Path(tmp) / "data")
        return
    server = config.server
    name = f"bench_saga_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    namespace = f"bench{uuid.uuid4().hex[:10]}"
    settle(config)
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = PostgresDsn(server.host, server.port, name, server.user, server.password)
    try:
        yield Settings(**common, database_url=dsn.url, amqp_url=config.amqp_url, bus_namespace=namespace)
    finally:
        try:
            asyncio.run(delete_namespace(config.amqp_url, namespace))
        finally:
            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def settle(config: Config) -> None:
    """Let the last run's aftermath pass before the next is measured.

    A run leaves PostgreSQL with tens of megabytes of dirty pages; the server
    flushes them at its next checkpoint, which would otherwise land, with the
    CPU and disk it costs, in the middle of the next run (the peer's included).
    """
    with psycopg.connect(config.server.url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    time.sleep(2)


async def delete_namespace(url: str, namespace: str) -> None:
    """Delete every queue and exchange a namespace can have (see infra.messaging.rabbitmq)."""
    names = []
    for queue in QUEUES:
        names += [f"{namespace}.{queue}", f"{namespace}.{queue}.dead"]
        names += [f"{namespace}.{queue}.retry.{n}" for n in range(1, len(RETRY_DELAYS_SECONDS) + 1)]
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for queue_name in names:
            try:
                await channel.queue_delete(queue_name)
            except aio_pika.exceptions.AMQPError:  # absent: the channel closes, open another
                channel = await connection.channel()
        for exchange in (EVENTS_EXCHANGE, COMMANDS_EXCHANGE):
            try:
                await channel.exchange_delete(f"{namespace}.{exchange}")
            except aio_pika.exceptions.AMQPError:
                channel = await connection.channel()


# --------------------------------------------------------------------------------------
# Placing orders and following them to their end
# --------------------------------------------------------------------------------------


class TerminalWatcher:
    """Counts terminal sagas by reading only the Completed/Compensated rows of the saga log."""

    def __init__(self, sagas: ContextApplication, saga_ids: set[uuid.UUID]) -> None:
        self.sagas = sagas
        self.expected = saga_ids
        self.seen: set[uuid.UUID] = set()
        self.position = sagas.recorder.max_notification_id() or 0

    def poll(self) -> int:
        while True:
            page = self.sagas.recorder.select_notifications(
                self.position, PAGE, topics=SAGA_TERMINAL_TOPICS, inclusive_of_start=False
            )
            for notification in page:
                if notification.originator_id in self.expected:
                    self.seen.add(notification.originator_id)  # type: ignore[arg-type]
            if page:
                self.position = page[-1].id
            if len(page) < PAGE:
                return len(self.seen)


@dataclass
class Timing:
    place_s: float
    elapsed_s: float
    terminal_seen: int
    timed_out: bool
    errors: list[str] = field(default_factory=list)


def drive(
    system: System, commands: Sequence[PlaceOrder], *, placers: int, rate: float, timeout: float,
    poll: float, on_start: Callable[[], None] = lambda: None,
) -> Timing:
    """Place every order from `placers` threads (at `rate` per second if given) and wait for the end."""
    n = len(commands)
    watcher = TerminalWatcher(
        system.sagas, {OrderFulfillment.create_id(c.order_id) for c in commands}
    )
    lock, stop = threading.Lock(), threading.Event()
    cursor = iter(range(n))
    errors: list[str] = []

    def place() -> None:
        while not stop.is_set():
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            if rate:
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            try:
                system.orders.place_order(commands[index])
            except Exception as error:
                errors.append(f"placing order {index}: {error!r}")
                stop.set()

    threads = [threading.Thread(target=place, name=f"placer-{i}", daemon=True) for i in range(placers)]
    on_start()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    place_s: float | None = None
    timed_out = False
    while True:
        if place_s is None and not any(t.is_alive() for t in threads):
            place_s = time.perf_counter() - started
        if watcher.poll() >= n or errors:
            break
        if time.perf_counter() - started > timeout + (n / rate if rate else 0.0):
            timed_out = True
            break
        time.sleep(poll)
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join(30)
    return Timing(place_s if place_s is not None else elapsed, elapsed, len(watcher.seen), timed_out,
                  errors)


# --------------------------------------------------------------------------------------
# What the stores say afterwards
# --------------------------------------------------------------------------------------


def read_log(app: ContextApplication, topics: Sequence[str], after: int = 0) -> Iterator[Any]:
    position = after
    while True:
        page = app.recorder.select_notifications(position, PAGE, topics=topics, inclusive_of_start=False)
        for notification in page:
            yield app.mapper.to_domain_event(notification)
        if len(page) < PAGE:
            return
        position = page[-1].id


@dataclass
class Before:
    on_hand: dict[uuid.UUID, int]
    positions: dict[str, int]


def before_run(system: System) -> Before:
    return Before(
        on_hand={p.product_id: system.inventory.get_stock(p.product_id).on_hand for p in SEED_CATALOGUE},
        positions={app.name: app.recorder.max_notification_id() or 0 for app in system},
    )


def verify(
    system: System, commands: Sequence[PlaceOrder], before: Before
) -> tuple[list[str], dict[str, Any]]:
    """Check the end state from the stores; return (failures, facts)."""
    fails: list[str] = []
    order_ids = {c.order_id for c in commands}
    saga_to_order = {OrderFulfillment.create_id(o): o for o in order_ids}
    payment_to_order = {Payment.create_id(o): o for o in order_ids}

    placed_at: dict[uuid.UUID, datetime] = {}
    total: dict[uuid.UUID, Decimal] = {}
    lines: dict[uuid.UUID, list[tuple[uuid.UUID, int]]] = {}
    order_end: dict[uuid.UUID, list[str]] = defaultdict(list)
    for event in read_log(system.orders, ORDER_TOPICS, before.positions[system.orders.name]):
        oid = event.originator_id
        if isinstance(event, Order.Placed):
            placed_at[oid], total[oid] = event.timestamp, event.total.amount
            lines[oid] = [(line.product_id, line.quantity) for line in event.lines]
        else:
            order_end[oid].append("completed" if isinstance(event, Order.Completed) else "cancelled")

    done_at: dict[uuid.UUID, datetime] = {}
    saga_end: dict[uuid.UUID, list[str]] = defaultdict(list)
    reasons: Counter[str] = Counter()
    for event in read_log(system.sagas, SAGA_TERMINAL_TOPICS, before.positions[system.sagas.name]):
        oid = saga_to_order.get(event.originator_id)
        if oid is None:
            fails.append(f"a terminal saga {event.originator_id} for no order of this run")
            continue
        done_at[oid] = event.timestamp
        if isinstance(event, OrderFulfillment.Completed):
            saga_end[oid].append("completed")
        else:
            saga_end[oid].append("compensated")
            reasons[event.reason.split(":")[0]] += 1

    if set(placed_at) != order_ids:
        fails.append(f"{len(order_ids - set(placed_at))} orders were never placed")
    unfinished = [o for o in order_ids if len(saga_end.get(o, ())) != 1]
    if unfinished:
        fails.append(f"{len(unfinished)} of {len(order_ids)} sagas not terminal exactly once")
    order_end_of_saga = {"completed": "completed", "compensated": "cancelled"}
    mismatched = [
        o for o in order_ids if saga_end.get(o) and order_end.get(o) != [order_end_of_saga[saga_end[o][0]]]
    ]
    if mismatched:
        fails.append(f"{len(mismatched)} orders whose end disagrees with their saga's")
    completed = {o for o in order_ids if saga_end.get(o) == ["completed"]}

    charged: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    refunded: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    for event in read_log(system.payments, PAYMENT_TOPICS, before.positions[system.payments.name]):
        oid = payment_to_order.get(event.originator_id)
        if oid is None:
            fails.append(f"a payment {event.originator_id} for no order of this run")
        elif isinstance(event, Payment.Charged):
            charged[oid] += event.amount.amount
        else:
            refunded[oid] += event.amount.amount
    net = sum(charged.values(), Decimal(0)) - sum(refunded.values(), Decimal(0))
    completed_total = sum((total[o] for o in completed if o in total), Decimal(0))
    if net != completed_total:
        fails.append(f"charged - refunded = {net}, but the completed orders total {completed_total}")
    kept = {o: total.get(o, Decimal(0)) if o in completed else Decimal(0) for o in order_ids}
    wrong_money = [o for o in order_ids if charged[o] - refunded[o] != kept[o]]
    if wrong_money:
        fails.append(f"{len(wrong_money)} orders keep the wrong amount of money")

    sold: Counter[uuid.UUID] = Counter()
    for oid in completed:
        for product_id, quantity in lines.get(oid, ()):
            sold[product_id] += quantity
    stock = {}
    for product in SEED_CATALOGUE:
        level = system.inventory.get_stock(product.product_id)
        stock[product.name] = {"on_hand": level.on_hand, "reserved": level.reserved,
                               "sold": sold[product.product_id]}
        if level.reserved:
            fails.append(f"{product.name}: {level.reserved} units still reserved at rest")
        if level.on_hand != before.on_hand[product.product_id] - sold[product.product_id]:
            fails.append(
                f"{product.name}: on hand {level.on_hand}, expected "
                f"{before.on_hand[product.product_id]} - {sold[product.product_id]} sold"
            )

    latency = {o: (done_at[o] - placed_at[o]).total_seconds() * 1000 for o in done_at if o in placed_at}
    appended = {
        app.name: (app.recorder.max_notification_id() or 0) - before.positions[app.name] for app in system
    }
    facts = {
        "latency": latency,
        "completed": completed,
        "outcomes": {"completed": len(completed), "compensated": dict(sorted(reasons.items()))},
        "money": {"charged": str(sum(charged.values(), Decimal(0))),
                  "refunded": str(sum(refunded.values(), Decimal(0))),
                  "completed_orders_total": str(completed_total)},
        "stock": stock,
        "events_appended": appended,
        "first_placed_at": min(placed_at.values()) if placed_at else None,
        "last_terminal_at": max(done_at.values()) if done_at else None,
    }
    return fails, facts


def hop_latencies(system: System, before: Before, order_ids: set[uuid.UUID]) -> dict[str, Any]:
    """Where the latency goes: the time between an order's consecutive events in two applications.

    Every event carries its order's id as correlation id, so each order's events across the
    six logs, in timestamp order, show each hop (relay, bus, consumer, transaction) as a gap.
    """
    timeline: dict[uuid.UUID, list[tuple[datetime, str]]] = defaultdict(list)
    for app in system:
        position = before.positions[app.name]
        while True:
            page = app.recorder.select_notifications(position, PAGE, inclusive_of_start=False)
            for notification in page:
                state = decode_state(app.mapper, notification)
                correlation = state.get("correlation_id")
                if correlation and uuid.UUID(correlation) in order_ids:
                    timeline[uuid.UUID(correlation)].append(
                        (datetime.fromisoformat(state["timestamp"]), app.name)
                    )
            if len(page) < PAGE:
                break
            position = page[-1].id
    gaps: dict[str, list[float]] = defaultdict(list)
    hops_per_order = []
    for events in timeline.values():
        events.sort()
        hops = 0
        for (t0, a0), (t1, a1) in itertools.pairwise(events):
            if a0 != a1:
                gaps[f"{a0}->{a1}"].append((t1 - t0).total_seconds() * 1000)
                hops += 1
        hops_per_order.append(hops)
    every = sorted(g for values in gaps.values() for g in values)
    return {
        "hops_per_order_median": statistics.median(hops_per_order) if hops_per_order else None,
        "any_hop_ms": {"p50": rounded(pct(every, 50)), "p95": rounded(pct(every, 95)),
                       "p99": rounded(pct(every, 99))} if len(every) > 1 else None,
        "by_hop_ms": {
            hop: {"n": len(v), "p50": rounded(pct(sorted(v), 50)), "p95": rounded(pct(sorted(v), 95))}
            for hop, v in sorted(gaps.items(), key=lambda kv: -len(kv[1])) if len(v) > 1
        },
    }


# --------------------------------------------------------------------------------------
# CPU accounting (Linux /proc)
# --------------------------------------------------------------------------------------

TICK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle, sum(v[:8])


def process_cpu(pid: int) -> tuple[str, float] | None:
    """(command name, CPU seconds so far) of one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / TICK


def processes_cpu() -> dict[int, tuple[str, float]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = process_cpu(int(entry))
            if found is not None:
                out[int(entry)] = found
    return out


class CpuMeter:
    """CPU used during a run: the host, this process, each named worker, and by command name."""

    def __init__(self, workers: dict[str, int] | None = None) -> None:
        self.workers = workers or {}

    def start(self) -> None:
        self.load0 = os.getloadavg()[0]
        self.host0 = host_cpu()
        self.self0 = resource.getrusage(resource.RUSAGE_SELF)
        self.procs0 = processes_cpu()

    def stop(self) -> dict[str, Any]:
        host1, self1, procs1 = host_cpu(), resource.getrusage(resource.RUSAGE_SELF), processes_cpu()
        by_name: dict[str, float] = defaultdict(float)
        for pid, (name, cpu) in procs1.items():
            was = self.procs0.get(pid)
            by_name[name] += cpu - (was[1] if was and was[0] == name else 0.0)
        roles = {
            role: round(procs1[pid][1] - self.procs0[pid][1], 2)
            for role, pid in self.workers.items() if pid in procs1 and pid in self.procs0
        }
        busy, total = host1[0] - self.host0[0], host1[1] - self.host0[1]
        return {
            "loadavg_1m_at_start": round(self.load0, 2),
            "host_busy_pct": round(100.0 * busy / total, 1) if total > 0 else None,
            "host_cpus": os.cpu_count(),
            "bench_process_s": round(
                (self1.ru_utime - self.self0.ru_utime) + (self1.ru_stime - self.self0.ru_stime), 2
            ),
            "by_command_s": {
                k: round(v, 2) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])[:6] if v >= 0.05
            },
            **({"worker_roles_s": roles} if roles else {}),
        }


class ConnectionSampler:
    """The most server connections the run's database had at once, sampled every second."""

    def __init__(self, settings: Settings) -> None:
        self.dsn = settings.postgres
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-connections", daemon=True)

    def start(self) -> None:
        if self.dsn is not None:
            self._thread.start()

    def stop(self) -> int | None:
        if self.dsn is None:
            return None
        self._stop.set()
        self._thread.join(10)
        return self.peak

    def _run(self) -> None:
        assert self.dsn is not None
        try:
            with psycopg.connect(self.dsn.url, autocommit=True) as conn:
                while not self._stop.is_set():
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    ).fetchone()
                    self.peak = max(self.peak, int(row[0]) if row else 0)
                    self._stop.wait(1.0)
        except psycopg.Error as error:
            log.warning("could not count connections: %s", error)


class BrokerTrouble(logging.Handler):
    """Counts the AMQP client's complaints (lost connections, reconnects) while a run is measured:
    a broker restarted by someone else spoils the figures, though the run still ends and verifies."""

    LOGGERS = ("aiormq.connection", "aio_pika.robust_connection", "aio_pika.connection")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    def __enter__(self) -> BrokerTrouble:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


def broker_trouble_in_logs(paths: Sequence[Path]) -> int:
    marks = ("Connection attempt", "Unexpected connection close", "error when creating transport")
    count = 0
    for path in paths:
        with contextlib.suppress(OSError):
            count += sum(1 for line in path.read_text(errors="replace").splitlines()
                         if any(mark in line for mark in marks))
    return count


# --------------------------------------------------------------------------------------
# Profiling with py-spy (optional)
# --------------------------------------------------------------------------------------


class Profiler:
    """py-spy recording the given processes while a run is measured."""

    def __init__(self, directory: Path | None, label: str, *, gil: bool = True) -> None:
        self.directory, self.label, self.gil = directory, label, gil
        self.spies: list[subprocess.Popen[bytes]] = []

    def attach(self, pids: dict[str, int]) -> None:
        if self.directory is None:
            return
        spy = Path(sys.executable).parent / "py-spy"
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            output = self.directory / f"{self.label}-{name}.txt"
            self.spies.append(subprocess.Popen(
                [str(spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "50",
                 "--nonblocking", *(["--gil"] if self.gil else []), "-o", str(output)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        time.sleep(1.0)  # py-spy takes a moment to attach

    def detach(self) -> None:
        for spy in self.spies:
            spy.send_signal(signal.SIGINT)
        for spy in self.spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
        self.spies.clear()


# --------------------------------------------------------------------------------------
# One run of each mode
# --------------------------------------------------------------------------------------


def run_in_process(mode: str, config: Config, commands: Sequence[PlaceOrder], rate: float) -> dict[str, Any]:
    """Modes a and b: every worker role on one bus in one process's event loop.

    Each run gets a fresh process of its own, as `saga serve` would be: a run in
    a process that has already run another inherits its heap (and its garbage
    collector's work), which slowed mode b by a fifth after mode a.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_run_in_this_process, mode, config, commands, rate).result()


def _run_in_this_process(
    mode: str, config: Config, commands: Sequence[PlaceOrder], rate: float
) -> dict[str, Any]:
    with fresh_store(mode, config) as settings:
        # The loop `saga serve` runs in (uvloop where installed).
        return run_event_loop(_in_process(mode, config, settings, commands, rate))


async def _in_process(
    mode: str, config: Config, settings: Settings, commands: Sequence[PlaceOrder], rate: float
) -> dict[str, Any]:
    system = bootstrap(settings)
    bus = make_bus(settings)
    runtime = Runtime(system, bus, WORKER_ROLES)
    # The driver gets a thread of its own: the loop's default executor serves the roles.
    driver = ThreadPoolExecutor(1, thread_name_prefix="bench-driver")
    profiler = Profiler(config.profile, f"{mode}{'-paced' if rate else ''}", gil=config.profile_gil)
    try:
        await runtime.start()
        await asyncio.to_thread(stock_up, system, len(commands))
        await asyncio.sleep(1.0)  # let the relays publish the seed events before the clock starts
        before = await asyncio.to_thread(before_run, system)
        meter, connections = CpuMeter(), ConnectionSampler(settings)

        def started() -> None:
            profiler.attach({"all-roles": os.getpid()})
            meter.start()
            connections.start()

        loop = asyncio.get_running_loop()
        try:
            with BrokerTrouble() as trouble:
                timing = await loop.run_in_executor(driver, lambda: drive(
                    system, commands, placers=config.placers, rate=rate, timeout=config.timeout,
                    poll=config.poll, on_start=started,
                ))
            cpu = meter.stop()
            cpu["broker_connection_errors"] = trouble.count
            cpu["pg_connections_peak"] = connections.stop()
        finally:
            profiler.detach()
        parked = len(await bus.dead_letters())
        fails, facts = await asyncio.to_thread(verify, system, commands, before)
        facts["hops"] = await asyncio.to_thread(
            hop_latencies, system, before, {c.order_id for c in commands}
        )
    finally:
        await runtime.stop()
        system.close()
        driver.shutdown()
    return figures(mode, config, commands, rate, timing, fails, facts, cpu, parked)


@dataclass
class Worker:
    role: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path


def run_processes(config: Config, commands: Sequence[PlaceOrder], rate: float) -> dict[str, Any]:
    """Mode c: one process per role, orders placed from here."""
    with fresh_store("c", config) as settings, tempfile.TemporaryDirectory(prefix="bench_saga_c_") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "RABBITMQ_"))}
        env.update({
            "DATABASE_URL": str(settings.database_url),
            "AMQP_URL": config.amqp_url,
            "BUS_NAMESPACE": settings.bus_namespace,
            "FAILURE_SEED": str(config.failure_seed),
            **{name.upper(): str(value) for name, value in FAILURE_RATES.items()},
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        })
        if config.worker_pool_size is not None:
            env["POSTGRES_POOL_SIZE"] = str(config.worker_pool_size)
        migrated = subprocess.run(
            [sys.executable, "-m", "infra.cli", "migrate"], env=env, cwd=work,
            capture_output=True, text=True, timeout=180, check=False,
        )
        if migrated.returncode != 0:
            raise RunFailed(f"migrate failed: {migrated.stderr[-2000:]}")
        env["CREATE_TABLE"] = "n"
        bench_settings = settings.model_copy(update={"create_table": False})
        if config.worker_pool_size is not None:
            bench_settings = bench_settings.model_copy(update={"postgres_pool_size": config.worker_pool_size})
        system = bootstrap(bench_settings)
        workers: list[Worker] = []
        try:
            stock_up(system, len(commands))
            for role in WORKER_ROLES:
                port = free_port()
                log_path = work / f"{role}.log"
                with open(log_path, "wb") as log_file:
                    process = subprocess.Popen(
                        [sys.executable, "-m", "infra.cli", "serve", "--role", role, "--port", str(port)],
                        env=env, cwd=work, stdout=log_file, stderr=subprocess.STDOUT,
                    )
                workers.append(Worker(role, port, process, log_path))
            for worker in workers:
                wait_for_health(worker, within=120)
            time.sleep(1.0)  # the relay publishes the seed events before the clock starts
            return _measure_processes(config, system, workers, commands, rate)
        finally:
            stop_workers(workers)
            system.close()
            if config.keep_logs:
                kept = Path(tempfile.gettempdir()) / f"bench_saga_c_logs_{os.getpid()}"
                shutil.copytree(work, kept, dirs_exist_ok=True)
                print(f"worker logs kept in {kept}", file=sys.stderr)


def _measure_processes(
    config: Config, system: System, workers: list[Worker], commands: Sequence[PlaceOrder], rate: float
) -> dict[str, Any]:
    before = before_run(system)
    pids = {w.role: w.process.pid for w in workers}
    meter, connections = CpuMeter(pids), ConnectionSampler(system.settings)
    profiler = Profiler(config.profile, f"c{'-paced' if rate else ''}", gil=config.profile_gil)

    def started() -> None:
        profiler.attach({**pids, "bench": os.getpid()})
        meter.start()
        connections.start()

    try:
        with BrokerTrouble() as trouble:
            timing = drive(system, commands, placers=config.placers, rate=rate, timeout=config.timeout,
                           poll=config.poll, on_start=started)
        cpu = meter.stop()
        logs = [w.log_path for w in workers]
        cpu["broker_connection_errors"] = trouble.count + broker_trouble_in_logs(logs)
        cpu["pg_connections_peak"] = connections.stop()
    finally:
        profiler.detach()
    dead = [f"{w.role} exited with {w.process.returncode}" for w in workers if w.process.poll() is not None]
    timing.errors += dead
    parked = asyncio.run(count_parked(system.settings))
    fails, facts = verify(system, commands, before)
    facts["hops"] = hop_latencies(system, before, {c.order_id for c in commands})
    return figures("c", config, commands, rate, timing, fails, facts, cpu, parked)


async def count_parked(settings: Settings) -> int:
    bus: Bus = RabbitBus(str(settings.amqp_url), namespace=settings.bus_namespace, queues=QUEUES)
    await bus.start()
    try:
        return len(await bus.dead_letters())
    finally:
        await bus.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_health(worker: Worker, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            tail = worker.log_path.read_text(errors="replace")[-3000:]
            raise RunFailed(f"role {worker.role} exited with {worker.process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/healthz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RunFailed(f"role {worker.role} did not answer /healthz within {within} s")


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 15
    for worker in workers:
        try:
            worker.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait(10)


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def pct(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def figures(
    mode: str, config: Config, commands: Sequence[PlaceOrder], rate: float, timing: Timing,
    fails: list[str], facts: dict[str, Any], cpu: dict[str, Any], parked: int,
) -> dict[str, Any]:
    n = len(commands)
    latency = sorted(facts["latency"].values())
    completed_latency = sorted(v for o, v in facts["latency"].items() if o in facts["completed"])
    completed = facts["outcomes"]["completed"]
    if timing.timed_out:
        fails.insert(0, f"timed out after {config.timeout:.0f} s: {timing.terminal_seen}/{n} sagas terminal")
    fails = timing.errors + fails
    by_ts = None
    if facts["first_placed_at"] and facts["last_terminal_at"]:
        by_ts = (facts["last_terminal_at"] - facts["first_placed_at"]).total_seconds()
    events = sum(facts["events_appended"].values())
    return {
        "mode": mode,
        "n": n,
        "rate": rate or None,
        "placers": config.placers,
        "elapsed_s": round(timing.elapsed_s, 3),
        "elapsed_by_event_ts_s": rounded(by_ts, 3),
        "place_s": round(timing.place_s, 3),
        "placed_per_s": round(n / timing.place_s, 1) if timing.place_s else None,
        "sagas_terminal": timing.terminal_seen,
        "sagas_per_s": round(timing.terminal_seen / timing.elapsed_s, 1),
        "completed_sagas_per_s": round(completed / timing.elapsed_s, 1),
        "latency_ms": {
            "p50": rounded(pct(latency, 50)) if latency else None,
            "p95": rounded(pct(latency, 95)) if latency else None,
            "p99": rounded(pct(latency, 99)) if latency else None,
            "max": rounded(latency[-1]) if latency else None,
            "completed_p50": rounded(pct(completed_latency, 50)) if completed_latency else None,
        },
        "hops": facts["hops"],
        "outcomes": facts["outcomes"],
        "events_appended": facts["events_appended"],
        "events_per_s": round(events / timing.elapsed_s, 1),
        "money": facts["money"],
        "stock": facts["stock"],
        "parked_messages": parked,
        "disturbed": bool(cpu.get("broker_connection_errors")),
        "cpu": cpu,
        "verified": not fails,
        "failures": fails[:20],
    }


MEDIAN_KEYS = ("elapsed_s", "place_s", "sagas_per_s", "completed_sagas_per_s", "events_per_s")


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each headline figure over runs (every run is kept beside it)."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"verified": False}
    out: dict[str, Any] = {k: round(statistics.median(r[k] for r in ok), 3) for k in MEDIAN_KEYS}
    out["latency_ms"] = {
        k: rounded(statistics.median(r["latency_ms"][k] for r in ok))
        for k in ok[0]["latency_ms"] if all(r["latency_ms"][k] is not None for r in ok)
    }
    out["host_busy_pct"] = rounded(statistics.median(r["cpu"]["host_busy_pct"] or 0 for r in ok))
    out["rate"] = ok[0]["rate"]
    out["disturbed_runs"] = sum(1 for r in ok if r.get("disturbed"))
    out["verified"] = all(r.get("verified") for r in runs)
    return out


def run_mode(mode: str, config: Config, commands: Sequence[PlaceOrder], rate: float = 0.0) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for index in range(config.runs):
        label = mode + (f" paced at {rate:.1f}/s" if rate else "")
        print(f"[{label}] run {index + 1}/{config.runs}: {MODES[mode]}, N={len(commands)}",
              file=sys.stderr, flush=True)
        try:
            if mode == "c":
                result = run_processes(config, commands, rate)
            else:
                result = run_in_process(mode, config, commands, rate)
        except Exception as error:
            log.exception("run failed")
            result = {"mode": mode, "error": repr(error), "verified": False}
        runs.append(result)
        print(line_of(result), file=sys.stderr, flush=True)
    return {"median": median_of(runs), "runs": runs}


def line_of(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"  FAILED: {r['error']}"
    lat, cpu = r["latency_ms"], r["cpu"]
    check = "checks passed" if r["verified"] else "CHECKS FAILED: " + "; ".join(r["failures"][:4])
    if cpu.get("broker_connection_errors"):
        check += (f"; DISTURBED: {cpu['broker_connection_errors']} broker connection errors "
                  "(the broker restarted?), figures not comparable")
    hop = r["hops"]["any_hop_ms"] or {}
    return (
        f"  {r['sagas_terminal']}/{r['n']} terminal in {r['elapsed_s']:.1f} s "
        f"(placing {r['place_s']:.1f} s): "
        f"{r['completed_sagas_per_s']:.1f} completed/s, {r['sagas_per_s']:.1f} terminal/s, "
        f"{r['events_per_s']:.0f} events/s; latency p50 {lat['p50']} p95 {lat['p95']} p99 {lat['p99']} "
        f"max {lat['max']} ms; host {cpu['host_busy_pct']}% busy, cpu-s {cpu['by_command_s']}"
        f"{'; pg connections ' + str(cpu['pg_connections_peak']) if cpu.get('pg_connections_peak') else ''}"
        f"{' roles ' + str(cpu['worker_roles_s']) if 'worker_roles_s' in cpu else ''}; "
        f"outcomes {r['outcomes']}; {r['hops']['hops_per_order_median']} hops an order, a hop "
        f"p50 {hop.get('p50')} p95 {hop.get('p95')} ms; parked {r['parked_messages']}; {check}"
    )


# --------------------------------------------------------------------------------------
# The peer
# --------------------------------------------------------------------------------------


def run_peer(path: Path, config: Config) -> dict[str, Any]:
    server = config.server
    env = {
        **os.environ,
        "BENCH_PG_HOST": os.environ.get("BENCH_PG_HOST", server.host),
        "BENCH_PG_PORT": os.environ.get("BENCH_PG_PORT", str(server.port)),
        "BENCH_PG_USER": os.environ.get("BENCH_PG_USER", server.user),
        "BENCH_PG_PASSWORD": os.environ.get("BENCH_PG_PASSWORD", server.password or "postgres"),
    }
    runs: list[dict[str, Any]] = []
    for index in range(config.runs):
        print(f"[peer] run {index + 1}/{config.runs}: {path.name} -n {config.orders}",
              file=sys.stderr, flush=True)
        settle(config)
        try:
            done = subprocess.run(
                [sys.executable, str(path), "-n", str(config.orders), "--timeout", str(config.timeout)],
                env=env, capture_output=True, text=True, timeout=config.timeout + 300, check=False,
            )
            sys.stderr.write("".join(f"  {line}\n" for line in done.stderr.splitlines()[-8:]))
            last = [line for line in done.stdout.splitlines() if line.strip()]
            result: dict[str, Any] = json.loads(last[-1]) if last else {"error": "no output"}
            if done.returncode != 0:
                result["error"] = f"exit status {done.returncode}"
        except (subprocess.TimeoutExpired, json.JSONDecodeError, OSError) as error:
            result = {"error": repr(error)}
        runs.append(result)
    ok = [r for r in runs if "error" not in r]
    median: dict[str, Any] = {"verified": bool(ok) and len(ok) == len(runs)}
    if ok:
        for key in ("elapsed_s", "sagas_per_s", "completed_sagas_per_s", "events_per_s"):
            median[key] = round(statistics.median(r[key] for r in ok), 3)
        median["latency_ms"] = {
            k: rounded(statistics.median(r["latency_ms"][k] for r in ok)) for k in ("p50", "p95", "p99")
        }
        median["runner"] = ok[0].get("runner")
    return {"median": median, "runs": runs}


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", "-n", type=int, default=2000, help="orders per run (default 2000)")
    parser.add_argument("--modes", default="a,b,c", help="any of a,b,c (default a,b,c)")
    parser.add_argument("--runs", type=int, default=1, help="runs per mode; medians are reported (default 1)")
    parser.add_argument("--placers", type=int, default=4, help="threads placing orders (default 4)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="orders/s of the paced runs (default: half the mode's measured maximum "
                             "completed sagas/s)")
    parser.add_argument("--paced-modes", default="b",
                        help="modes that run again paced, after their maximum-rate runs (default b)")
    parser.add_argument("--no-paced", action="store_true", help="no paced runs")
    parser.add_argument("--paced-only", action="store_true",
                        help="with --rate: only the paced runs, no maximum-rate runs")
    parser.add_argument("--skip-peer", action="store_true", help="do not run the peer")
    parser.add_argument("--peer", type=Path, default=DEFAULT_PEER,
                        help=f"the peer script (default {DEFAULT_PEER})")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="a run fails if its sagas have not all ended this many seconds after the "
                             "first placement (after the last scheduled one in paced runs; default 600)")
    parser.add_argument("--poll", type=float, default=0.02, help="completion poll interval, s (default 0.02)")
    parser.add_argument("--order-seed", type=int, default=7)
    parser.add_argument("--failure-seed", type=int, default=42)
    parser.add_argument("--profile", type=Path, default=None,
                        help="record py-spy raw profiles of each measured run into this directory")
    parser.add_argument("--profile-waits", action="store_true",
                        help="profile every running thread, waiting on I/O included (default: only "
                             "the thread holding the GIL, i.e. where the CPU goes)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker logs of mode c")
    parser.add_argument("--worker-pool-size", type=int, default=None,
                        help="POSTGRES_POOL_SIZE of each mode c process, per application "
                             "(default: the system's own; 0 opens connections on demand)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown or args.orders < 1 or args.runs < 1 or args.placers < 1:
        parser.error(f"bad arguments (unknown modes: {sorted(unknown)})" if unknown else "bad arguments")
    if args.paced_only and not args.rate:
        parser.error("--paced-only needs --rate")
    if not args.skip_peer and not args.peer.exists():
        parser.error(f"no peer at {args.peer} (give --peer PATH or --skip-peer)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    config = Config(
        orders=args.orders, runs=args.runs, placers=args.placers, timeout=args.timeout, poll=args.poll,
        order_seed=args.order_seed, failure_seed=args.failure_seed,
        database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        amqp_url=os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL,
        profile=args.profile, profile_gil=not args.profile_waits, keep_logs=args.keep_logs,
        worker_pool_size=args.worker_pool_size,
    )
    commands = make_orders(config.orders, config.order_seed)
    report: dict[str, Any] = {
        "bench": "saga_throughput",
        "orders": config.orders,
        "runs": config.runs,
        "placers": config.placers,
        "order_seed": config.order_seed,
        "failure_seed": config.failure_seed,
        "failure_rates": FAILURE_RATES,
        "postgres": f"{config.server.host}:{config.server.port}",
        "amqp": urlsplit(config.amqp_url).hostname,
        "mode_c_pool_size": config.worker_pool_size,
        "modes": {},
    }
    try:
        run_all(args, config, commands, modes, report)
    except KeyboardInterrupt:
        report["interrupted"] = True
        print("interrupted: reporting what has been measured", file=sys.stderr)

    ok = not report.get("interrupted") and all(m["median"].get("verified") for m in report["modes"].values())
    ok = ok and all(p["median"].get("verified") for p in report.get("paced", {}).values())
    report["verified"] = ok
    summarize(report)
    print(json.dumps(report, default=str))
    return 0 if ok else 1


def run_all(
    args: argparse.Namespace, config: Config, commands: Sequence[PlaceOrder], modes: list[str],
    report: dict[str, Any],
) -> None:
    """The maximum-rate runs, the peer next to them (the host's load drifts), then the paced runs."""
    for mode in [] if args.paced_only else modes:
        report["modes"][mode] = {"what": MODES[mode], **run_mode(mode, config, commands)}

    if not args.skip_peer:
        report["peer"] = run_peer(args.peer, config)
        peer_rate = report["peer"]["median"].get("completed_sagas_per_s")
        ours = {mode: report["modes"].get(mode, {}).get("median", {}).get("completed_sagas_per_s")
                for mode in ("b", "c")}
        report["ratios_vs_peer"] = {
            mode: round(rate / peer_rate, 2) for mode, rate in ours.items() if rate and peer_rate
        }

    paced_modes = [] if args.no_paced else [m.strip() for m in args.paced_modes.split(",") if m.strip()]
    for mode in modes if args.paced_only else [m for m in modes if m in paced_modes]:
        max_completed = report["modes"].get(mode, {}).get("median", {}).get("completed_sagas_per_s")
        rate = args.rate or (max_completed / 2 if max_completed else 0.0)
        if rate > 0:
            paced = run_mode(mode, config, commands, rate=round(rate, 1))
            p99 = paced["median"].get("latency_ms", {}).get("p99")
            report.setdefault("paced", {})[mode] = {
                "rate_orders_per_s": round(rate, 1),
                "rate_basis": "--rate" if args.rate else f"half of mode {mode}'s maximum completed sagas/s",
                "p99_ms": p99,
                "p99_under_1s": p99 is not None and p99 < 1000,
                **paced,
            }


def summarize(report: dict[str, Any]) -> None:
    lines = [f"saga_throughput: N={report['orders']}, {report['runs']} run(s) per mode, "
             f"{report['placers']} placing threads, failure seed {report['failure_seed']}"]
    for mode, result in report["modes"].items():
        m = result["median"]
        if "completed_sagas_per_s" not in m:
            lines.append(f"  {mode} ({result['what']}): FAILED")
            continue
        lines.append(
            f"  {mode} ({result['what']}): {m['completed_sagas_per_s']:.1f} completed sagas/s, "
            f"{m['sagas_per_s']:.1f} terminal/s; latency p50 {m['latency_ms'].get('p50')} "
            f"p95 {m['latency_ms'].get('p95')} p99 {m['latency_ms'].get('p99')} ms"
            f"{'' if m['verified'] else '  CHECKS FAILED'}"
            f"{'  (DISTURBED: the broker restarted during a run)' if m.get('disturbed_runs') else ''}"
        )
    for mode, p in report.get("paced", {}).items():
        lines.append(f"  {mode} paced at {p['rate_orders_per_s']} orders/s: p99 {p['p99_ms']} ms "
                     f"({'under' if p['p99_under_1s'] else 'NOT under'} 1 s)"
                     f"{'  (DISTURBED: the broker restarted)' if p['median'].get('disturbed_runs') else ''}")
    if "peer" in report:
        pm = report["peer"]["median"]
        lines.append(f"  peer ({pm.get('runner')}): {pm.get('completed_sagas_per_s')} completed sagas/s, "
                     f"{pm.get('sagas_per_s')} terminal/s; latency {pm.get('latency_ms')}")
        lines.append(f"  ratio of completed sagas/s to the peer's: {report.get('ratios_vs_peer')}")
    lines.append("  all checks passed" if report["verified"] else "  SOME CHECKS FAILED")
    print("\n".join(lines), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Write-side throughput: events/s for one command per transaction and for batched saves.

Runs on the embedded SQLite store and on PostgreSQL, each in a fresh store, and
beside them the bare eventsourcing library (dataclass events, its default JSON
mapper) doing the same saves, so the figures can be read as ratios on a noisy
machine; and our saves once more with the hash chain left out, then with the
addresses in clear as well, so that `chaining_cost_*`, `sealing_cost_*` and
`privacy_and_proof_cost_*` say what chaining each event to the one before,
sealing each customer's address with their own key, and both cost (the share
of throughput each takes). Prints one JSON document; medians of --runs runs.

Each figure comes twice: every order a new customer's (the dearest case for sealing:
each needs a new key, one more row in the key table), and, prefixed `returning_`,
orders from a population of --customers customers who have ordered before (their
keys at hand, each save checking them against the key table).

Within a run, ours with both, without the chain, and with neither take turns, three
rounds over, and each figure is the median of its rounds.

    python bench/write_side.py [--commands 1000] [--batched 20000] [--batch 500] [--customers 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate as LibraryAggregate
from eventsourcing.domain import event
from eventsourcing.persistence import Tracking
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput.plain import unchained
from commands.contract.messages import ProductListed
from commands.orders import Orders, PlaceOrder
from domain.order import Order, OrderLine
from domain.values import Address, Money
from infra.eventstore.persistence import application_env
from infra.eventstore.privacy import personal_data_keys
from infra.settings import PostgresDsn, Settings

ROUNDS = 3
SAVES = ["", "_unchained", "_plain"]  # sealed and chained; sealed; neither
PRODUCT = uuid.UUID("550e8400-e29b-41d4-a716-446655440002")
ADDRESS = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")


def hear_the_mouse(orders: Orders) -> None:
    """Orders hears Inventory list the one product the orders name, as its consumer would deliver it."""
    listed = ProductListed(product_id=PRODUCT, name="Wireless Mouse", price=Money.of("49.99"))
    orders.hear_listing(listed, Tracking("Inventory", 1))


class Plain(LibraryAggregate):
    @event("Placed")
    def __init__(self, customer: str, quantity: int, total: str) -> None:
        self.customer, self.quantity, self.total = customer, quantity, total


def timed(n_events: int, work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return n_events / (time.perf_counter() - started)


Customers = Callable[[], uuid.UUID]
"""Who places the next order."""


def new_customers() -> uuid.UUID:
    return uuid.uuid4()


def returning(population: list[uuid.UUID]) -> Customers:
    picks = random.Random(7)
    return lambda: picks.choice(population)


def one_per_transaction(app: Orders, n: int, customer: Customers = new_customers) -> float:
    commands = [
        PlaceOrder(customer_id=customer(), items=[{"product_id": PRODUCT, "quantity": 1}],
                   shipping_address=ADDRESS)
        for _ in range(n)
    ]
    return timed(n, lambda: [app.place_order(c) for c in commands])


def batched(app: Orders, n: int, batch: int, customer: Customers = new_customers) -> float:
    line = [OrderLine(product_id=PRODUCT, quantity=1, unit_price=Money.of("49.99"))]
    orders = [Order.place(uuid.uuid4(), customer(), line, ADDRESS) for _ in range(n)]

    def save() -> None:
        for i in range(0, n, batch):
            app.record(orders[i : i + batch], None)

    return timed(n, save)


def library_one(app: Application[uuid.UUID], n: int) -> float:
    aggregates = [Plain(customer=str(uuid.uuid4()), quantity=1, total="49.99") for _ in range(n)]
    return timed(n, lambda: [app.save(a) for a in aggregates])


def library_batched(app: Application[uuid.UUID], n: int, batch: int) -> float:
    aggregates = [Plain(customer=str(uuid.uuid4()), quantity=1, total="49.99") for _ in range(n)]

    def save() -> None:
        for i in range(0, n, batch):
            app.save(*aggregates[i : i + batch])

    return timed(n, save)


class Store:
    """A fresh, throw-away store per run."""

    def __init__(self, kind: str, server: PostgresDsn) -> None:
        self.kind, self.server = kind, server

    def __enter__(self) -> Settings:
        if self.kind == "sqlite":
            self.tmp = tempfile.TemporaryDirectory(prefix="bench_write_")
            return Settings(_env_file=None, data_dir=Path(self.tmp.name))
        self.db = f"bench_write_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.db)))
        dsn = PostgresDsn(self.server.host, self.server.port, self.db, self.server.user,
                          self.server.password)
        return Settings(_env_file=None, database_url=dsn.url)

    def __exit__(self, *_: object) -> None:
        if self.kind == "sqlite":
            self.tmp.cleanup()
            return
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.db))
            )


def run_once(
    kind: str, server: PostgresDsn, commands: int, n_batched: int, batch: int, customers: int
) -> dict[str, float]:
    with Store(kind, server) as settings:
        env = application_env(settings, "Orders")
        ours = Orders(env)
        hear_the_mouse(ours)
        # As the composition root attaches them: addresses sealed, their keys kept by the saves.
        keys = personal_data_keys(ours.recorder.key_table, settings)  # type: ignore[attr-defined]
        ours.mapper.personal = ours.recorder.personal = keys  # type: ignore[attr-defined]
        library_env = {k: v for k, v in env.items() if k not in ("MAPPER_TOPIC", "TRANSCODER_TOPIC")}
        if kind == "sqlite":
            library_env["SQLITE_DBNAME"] = str(settings.data_dir / "library.sqlite")
        library: Application[uuid.UUID] = Application(
            {**library_env, "CREATE_TABLE": "y"}
        )
        try:
            figures: dict[str, list[float]] = {}
            population = [uuid.uuid4() for _ in range(customers)]
            one_per_transaction(ours, customers, iter(population).__next__)  # each has ordered once
            # Ours with both, without the chain, and with neither, in turn, a few times over: the
            # store grows and the host drifts alike for each.
            for round_ in range(ROUNDS):
                for suffix in SAVES[round_ % len(SAVES):] + SAVES[:round_ % len(SAVES)]:
                    with unchained() if suffix else contextlib.nullcontext():
                        sealing = keys if suffix != "_plain" else None
                        ours.mapper.personal = ours.recorder.personal = sealing  # type: ignore[attr-defined]
                        for prefix, customer in (("", new_customers), ("returning_", returning(population))):
                            figures.setdefault(f"{prefix}one_per_transaction{suffix}", []).append(
                                one_per_transaction(ours, commands, customer))
                            figures.setdefault(f"{prefix}batched{suffix}", []).append(
                                batched(ours, n_batched, batch, customer))
            figures["library_one_per_transaction"] = [library_one(library, commands)]
            figures["library_batched"] = [library_batched(library, n_batched, batch)]
            return {name: statistics.median(rates) for name, rates in figures.items()}
        finally:
            ours.close()
            library.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=1000, help="commands, one per transaction, a round")
    parser.add_argument("--batched", type=int, default=20_000, help="events saved in batches, a round")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--customers", type=int, default=1000, help="the returning customers' population")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args(argv)
    server = PostgresDsn.parse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    figures: dict[str, Any] = {"unit": "events/s", "runs": args.runs, "batch": args.batch}
    for kind in args.stores.split(","):
        runs = [run_once(kind, server, args.commands, args.batched, args.batch, args.customers)
                for _ in range(args.runs)]
        medians: dict[str, float] = {k: round(statistics.median(r[k] for r in runs)) for k in runs[0]}
        medians["ratio_one_vs_library"] = round(
            medians["one_per_transaction"] / medians["library_one_per_transaction"], 2)
        medians["ratio_batched_vs_library"] = round(
            medians["batched"] / medians["library_batched"], 2)
        for kind_of_save in ("one_per_transaction", "batched", "returning_one_per_transaction",
                             "returning_batched"):
            medians[f"chaining_cost_{kind_of_save}"] = round(
                1 - medians[kind_of_save] / medians[f"{kind_of_save}_unchained"], 3)
            medians[f"sealing_cost_{kind_of_save}"] = round(
                1 - medians[f"{kind_of_save}_unchained"] / medians[f"{kind_of_save}_plain"], 3)
            medians[f"privacy_and_proof_cost_{kind_of_save}"] = round(
                1 - medians[kind_of_save] / medians[f"{kind_of_save}_plain"], 3)
        figures[kind] = medians
        print(f"{kind}: {medians}", file=sys.stderr)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()

"""What a run asks for: the queries, the options with their defaults, and the Config they make."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from infra.settings import PostgresDsn, Settings

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
STORES = {
    "sqlite": "embedded: SQLite + in-process bus, every role in one process",
    "postgres": "PostgreSQL + RabbitMQ, the API alone (saga serve --role api --workers W)",
}
AUTH = {
    "both": "dev mode (no token) and required mode (customer tokens)",
    "off": "dev mode only (no token)",
    "on": "required mode only (customer tokens)",
}
ANSWERS = {
    "kept": "the same request bodies again and again: after its first, each is answered from a kept answer",
    "fresh": "every request body unique (an `extensions` member numbered per request): no kept answer serves "
             "it, so each runs its query",
}
FAILURE_RATES = {
    name: Settings.model_fields[name].default
    for name in ("payment_failure_rate", "shipping_failure_rate", "notification_failure_rate")
}
PAGE_SIZE = 20
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


class RunFailed(Exception):
    """The run could not be carried out: the server did not start, or the orders did not finish."""


@dataclass(frozen=True)
class Config:
    orders: int
    concurrency: int
    load_processes: int
    workers: int
    seconds: float
    warmup: float
    runs: int
    placers: int
    timeout: float
    order_seed: int
    failure_seed: int
    wait_quiet: float
    auth: str
    answers: tuple[str, ...]
    database_url: str
    amqp_url: str

    @property
    def server(self) -> PostgresDsn:
        return PostgresDsn.parse(self.database_url)

    @property
    def customers(self) -> int:
        """One customer per client, unless there are fewer orders than clients."""
        return min(self.concurrency, self.orders)


def parse_options(argv: list[str] | None, description: str | None) -> tuple[Config, list[str]]:
    """The Config the command line asks for, and the stores to measure, in order."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", "-n", type=int, default=500, help="orders placed before measuring (500)")
    parser.add_argument("--clients", "--concurrency", "-c", dest="clients", type=int, default=16,
                        help="concurrent clients, each a customer of its own and a connection (16)")
    parser.add_argument("--load-processes", type=int, default=1,
                        help="processes the clients are dealt out to, each one event loop (1)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes serving the API on PostgreSQL, sharing its port "
                             f"(saga serve --role api --workers W; default one per core: {os.cpu_count()})")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per query (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each (2)")
    parser.add_argument("--runs", type=int, default=3, help="runs per store; medians are reported (3)")
    parser.add_argument("--stores", default="sqlite,postgres", help="any of sqlite,postgres (both)")
    parser.add_argument("--auth", choices=tuple(AUTH), default="both",
                        help="both: order(id) without a token (dev mode) and with a customer token "
                             "(required mode), and their ratio; off: dev mode only; on: required mode "
                             "only (both)")
    parser.add_argument("--answers", default=",".join(ANSWERS),
                        help="any of kept,fresh: kept, requests the API answers from what it kept; fresh, "
                             "each request body unique, so that each runs its query (both)")
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
    answers = tuple(a.strip() for a in args.answers.split(",") if a.strip())
    if set(stores) - set(STORES) or not answers or set(answers) - set(ANSWERS) or min(
            args.orders, args.clients, args.runs, args.placers, args.load_processes, args.workers) < 1:
        parser.error(f"bad arguments (stores are {', '.join(STORES)}; answers {', '.join(ANSWERS)})")
    config = Config(
        orders=args.orders, concurrency=args.clients, load_processes=min(args.load_processes, args.clients),
        workers=args.workers, seconds=args.seconds, warmup=args.warmup, runs=args.runs,
        placers=args.placers, timeout=args.timeout, order_seed=args.order_seed,
        failure_seed=args.failure_seed, wait_quiet=args.wait_quiet, auth=args.auth, answers=answers,
        database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        amqp_url=os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL,
    )
    return config, stores

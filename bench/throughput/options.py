"""The command line: the options with their defaults and checks, and the Config they make."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.throughput.config import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, DEFAULT_PEER, MODES, Config

# What --help says of the bench, before its options.
DESCRIPTION = """Saga throughput: N orders through the whole order-fulfilment saga, end to end.

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
  c  each role its own process (`python -m infra.cli serve --role R`) on PostgreSQL +
     RabbitMQ; orders are placed from this process through the Orders application
  b0 mode b with the customers' addresses in clear and no hash chain: beside b
     (`--modes b,b0`) it prices sealing personal data and chaining events, as
     `privacy_and_proof_cost` (the share of b0's completed sagas/s that b lacks)
  d  mode c grown past one box: each context and the read store on a PostgreSQL database
     of its own (ORDERS_DATABASE_URL ... READ_DATABASE_URL), quorum queues on the
     three-node RabbitMQ cluster of `python -m infra.messaging.cluster` (ports 5681-5683,
     started if it is not running; needs root), AMQP_URL listing its three nodes
After the maximum-rate runs the peer (the same saga on the eventsourcing library's own
System runner, ../shared/bench/peer_es_saga.py) runs with the same N, and the ratios of
b, c and d to its completed sagas/s are reported, and d's to c's. Then mode b (--paced-modes) runs again
with orders placed at a steady rate, half its measured maximum completed sagas/s (or
--rate), for the DESIGN bar: p99 under 1 s at half the maximum rate.

Each run also reports where its latency goes (the gaps between an order's consecutive
events in two applications: one per relay + bus + consumer hop), CPU seconds by process
(and by role in modes c and d), the peak PostgreSQL connections, and whether the AMQP client
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


def parse_options(argv: list[str] | None = None) -> tuple[argparse.Namespace, Config, list[str]]:
    """The options given, the Config they make (servers from DATABASE_URL and AMQP_URL), and the modes."""
    parser = make_parser()
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown or args.orders < 1 or args.runs < 1 or args.placers < 1:
        parser.error(f"bad arguments (unknown modes: {sorted(unknown)})" if unknown else "bad arguments")
    if args.paced_only and not args.rate:
        parser.error("--paced-only needs --rate")
    if not args.skip_peer and not args.peer.exists():
        parser.error(f"no peer at {args.peer} (give --peer PATH or --skip-peer)")
    config = Config(
        orders=args.orders, runs=args.runs, placers=args.placers, timeout=args.timeout, poll=args.poll,
        order_seed=args.order_seed, failure_seed=args.failure_seed,
        database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        amqp_url=os.environ.get("AMQP_URL") or DEFAULT_AMQP_URL,
        profile=args.profile, profile_gil=not args.profile_waits, keep_logs=args.keep_logs,
        worker_pool_size=args.worker_pool_size,
    )
    return args, config, modes


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", "-n", type=int, default=2000, help="orders per run (default 2000)")
    parser.add_argument("--modes", default="a,b,c", help="any of a,b,c,d,b0 (default a,b,c)")
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
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker logs of modes c and d")
    parser.add_argument("--worker-pool-size", type=int, default=None,
                        help="POSTGRES_POOL_SIZE of each mode c and d process, per application "
                             "(default: the system's own; 0 opens connections on demand)")
    return parser

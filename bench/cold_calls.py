"""What one piece of a hop's work costs in CPU when it runs back to back, and when the process sleeps between.

A saga's hop is a few short pieces of work (decode a message, save, read, publish)
with waits between them. At the maximum rate they run back to back; paced, the
thread sleeps between one and the next, other processes run on the core meanwhile,
and the next piece starts with cold caches. This bench prices the same pieces
both ways, on this host:

- `save`: Orders saving one placed order on PostgreSQL (its address sealed, its
  event chained, the save function), as a consumer's batch of one saves it;
- `statement`: one INSERT of one row, autocommitted, through psycopg;
- `decode`: one stored `Order.Placed` turned back into its event (orjson and
  pydantic): Python alone, no I/O.

Each is called --calls times with no gap, then with a sleep of 1, 3 and 10 ms
before each call, in --rounds rounds; CPU is the calling thread's own
(`time.thread_time`), medians of the rounds. Prints one JSON document:
`cpu_us_per_call[work][gap_ms]` and `ratio_to_back_to_back[work][gap_ms]`.

    python bench/cold_calls.py [--calls 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.replay import DEFAULT_DATABASE_URL, fresh_store
from domain.order import Order, OrderLine
from domain.values import Address, Money
from infra.bootstrap import bootstrap

GAPS_MS = (0, 1, 3, 10)
ADDRESS = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")
LINE = [OrderLine(product_id=uuid.uuid4(), quantity=1, unit_price=Money.of("9.99"))]


def cpu_per_call(work: Callable[[], object], calls: int, gap_s: float) -> float:
    """Microseconds of this thread's CPU a call, sleeping `gap_s` before each (the sleep's own excluded)."""
    spent = 0.0
    for _ in range(calls):
        if gap_s:
            time.sleep(gap_s)
        started = time.thread_time()
        work()
        spent += time.thread_time() - started
    return spent / calls * 1e6


def measure(works: dict[str, Callable[[], object]], calls: int, rounds: int) -> dict[str, Any]:
    seen: dict[str, dict[int, list[float]]] = {name: {gap: [] for gap in GAPS_MS} for name in works}
    for _ in range(rounds):
        for name, work in works.items():
            for _ in range(calls // 10):  # warm: the code loaded, the connection's statements prepared
                work()
            for gap in GAPS_MS:
                seen[name][gap].append(cpu_per_call(work, calls, gap / 1000))
    medians = {name: {str(gap): round(statistics.median(v), 1) for gap, v in gaps.items()}
               for name, gaps in seen.items()}
    return {
        "gaps_ms": list(GAPS_MS),
        "cpu_us_per_call": medians,
        "ratio_to_back_to_back": {
            name: {gap: round(us / per_gap["0"], 2) for gap, us in per_gap.items()}
            for name, per_gap in medians.items()
        },
        "rounds": {name: {str(gap): [round(x, 1) for x in v] for gap, v in gaps.items()}
                   for name, gaps in seen.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per gap and round (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported (default 5)")
    args = parser.parse_args(argv)
    server_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    with fresh_store("postgres", server_url, sealing=True) as settings:
        url = settings.database_url
        assert url is not None
        system = bootstrap(settings)
        orders = system.orders
        stored = orders.mapper.to_stored_event(Order.place(uuid.uuid4(), uuid.uuid4(), LINE, ADDRESS)
                                               .collect_events()[0])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE cold_calls (n bigint)")
            works: dict[str, Callable[[], object]] = {
                "save": lambda: orders.record([Order.place(uuid.uuid4(), uuid.uuid4(), LINE, ADDRESS)], None),
                "statement": lambda: conn.execute("INSERT INTO cold_calls VALUES (1)"),
                "decode": lambda: orders.mapper.to_domain_event(stored),
            }
            report = {"calls": args.calls, **measure(works, args.calls, args.rounds)}
        system.close()
    print(json.dumps(report))
    per_work = report["cpu_us_per_call"].items()
    summary = ", ".join(f"{name} {per['0']} -> {per['10']} us" for name, per in per_work)
    print(f"cold_calls: back to back -> 10 ms apart: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

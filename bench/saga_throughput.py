"""Saga throughput: N orders through the whole order-fulfilment saga, end to end, in each mode.

    .venv/bin/python bench/saga_throughput.py [--orders 2000] [--modes a,b,c] [--runs 1] [--skip-peer]

Each mode (a: embedded; b: PostgreSQL + RabbitMQ, one process; c: a process per role) runs at its
maximum rate in fresh stores, the eventsourcing peer runs beside them, then mode b runs again paced
at half its maximum. Every run checks its own outcomes. Prints one JSON document on stdout and a
summary on stderr; exits 1 if a check failed. `--help` and bench/README.md say what each figure
means; the parts live in bench/throughput/.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.throughput.figures import summarize
from bench.throughput.options import parse_options
from bench.throughput.runs import all_verified, new_report, run_all
from bench.throughput.workload import make_orders


def main(argv: list[str] | None = None) -> int:
    args, config, modes = parse_options(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    commands = make_orders(config.orders, config.order_seed)
    report = new_report(config)
    try:
        run_all(args, config, commands, modes, report)
    except KeyboardInterrupt:
        report["interrupted"] = True
        print("interrupted: reporting what has been measured", file=sys.stderr)
    report["verified"] = ok = all_verified(report)
    summarize(report)
    print(json.dumps(report, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

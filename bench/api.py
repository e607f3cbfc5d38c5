"""GraphQL reads: requests/s and latency of `order(id)` and `orders(first: 20)`, what a token costs, and
the CPU a request costs the server, the load and PostgreSQL.

    .venv/bin/python bench/api.py [--orders 500] [--clients 16] [--load-processes 1] [--workers W]
        [--seconds 10] [--warmup 2] [--runs 3] [--stores sqlite,postgres] [--auth both|off|on]
        [--wait-quiet 120] [--answers kept,fresh]

Each run works on a fresh, throw-away store (sqlite: SQLite files and the in-process bus;
postgres: a new database and RabbitMQ vhost), restocks the catalogue and places --orders
orders through GraphQL on `saga serve` (every role), waits until each has ended and the
projections have caught up, and stops that server. Then, for each auth mode (--auth), it
starts the server again on the same store (on PostgreSQL the API alone, `saga serve --role
api --workers W`) and measures each query from --clients clients, dealt out to
--load-processes processes of raw keep-alive HTTP/1.1 connections sending requests built
beforehand, for --warmup seconds not counted and --seconds counted:

  order             dev mode, no token: order(id) of a random order of the client's customer
  orders_first_20   dev mode: orders(first: 20), the same selection for each of the 20 newest
  order_with_token  required mode (AUTH_JWT_SECRET set): `order`, each client sending its
                    customer's token (scope customer)

Each query is measured with kept answers and with fresh ones (--answers): the API keeps the
answers of `order` and `orders` under the exact request body while the read model does not
move (read_api/answer_cache.py), so a client sending the same requests again is answered from
what was kept (`kept`); in `fresh` every request's body carries one more member, a number of its
own (`"extensions": {"request": "..."}`), so that no kept answer serves it and each runs its
query, asked with the same query text.

Every answer is checked: a non-200 answer, or a body other than the one learned for that
order id before measuring (from one answer checked as JSON: no errors, the order asked for;
the same body for a fresh request) is an error, counted by kind, left out of the rate and
latency, and makes the bench exit 1. Prints one JSON document on stdout (per store, answers
mode and query: medians of --runs runs, and every run) and a summary on stderr;
bench/README.md says what each figure means. DATABASE_URL and AMQP_URL name the servers
(default the local ones). The parts live in bench/api_parts/.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_parts.config import FAILURE_RATES, parse_options
from bench.api_parts.figures import summarize
from bench.api_parts.runs import run_store


def main(argv: list[str] | None = None) -> int:
    config, stores = parse_options(argv, __doc__)
    report: dict[str, Any] = {
        "bench": "api", "orders": config.orders, "customers": config.customers,
        "concurrency": config.concurrency, "load_processes": config.load_processes,
        "workers": config.workers, "seconds": config.seconds, "warmup_s": config.warmup,
        "runs": config.runs, "auth": config.auth, "answers": config.answers,
        "wait_quiet_s": config.wait_quiet,
        "order_seed": config.order_seed, "failure_seed": config.failure_seed, "failure_rates": FAILURE_RATES,
        "cores": os.cpu_count(), "load_1min_at_start": os.getloadavg()[0],
        "note": "the load processes, the server and the stores share the cores",
        "answer_cache": "on: the API has no setting to turn off its kept answers of order and orders; "
                        "fresh requests are each unique, so that none is answered from them",
        "stores": {},
    }
    try:
        for store in stores:
            report["stores"][store] = run_store(store, config)
    except KeyboardInterrupt:
        report["interrupted"] = True
    report["errors"] = sum(q["errors"] for m in report["stores"].values()
                           for answer in config.answers for q in m["median"].get(answer, {}).values())
    failed_runs = sum(m["median"]["runs_failed"] for m in report["stores"].values())
    report["ok"] = not report["errors"] and not failed_runs and not report.get("interrupted")
    summarize(report)
    print(json.dumps(report, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

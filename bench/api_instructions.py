"""Instructions a fresh GraphQL request costs the API's process, counted by valgrind's callgrind: a
figure that does not move with the host, for telling two versions of the code apart.

    .venv/bin/python bench/api_instructions.py [--orders 200] [--requests 200] [--warmup 150]
        [--queries order,orders_first_20]

On a fresh store (a new PostgreSQL database and RabbitMQ vhost, as bench/api.py makes) it places
--orders orders on `saga serve` (every role) and waits until each has ended. Then it starts the API
alone, one process (`saga serve --role api`), under callgrind with its instrumentation off, sends
--warmup fresh requests of each query, and for each query turns the counting on, sends --requests
fresh requests one after another on one keep-alive connection (each body unique, as bench/api.py's
`fresh` answers: no kept answer serves it) and reads the count back. Every answer is checked (200,
no errors) before it counts.

The figure is the instructions the API's process ran a request in user space: Python, uvicorn,
asyncpg, the event loop; not the kernel's (the sockets' system calls) and not PostgreSQL's. The
same code counts the same to a fraction of a percent from run to run, however busy the host, where
its CPU time on a shared host moves by half: the measure for a change of a few percent. It is not
a rate: a request's seconds also depend on caches, the kernel and PostgreSQL (bench/api.py).
Needs valgrind (`callgrind_control` with it). Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson

from bench.api_parts.config import ORDER, ORDER_Q, ORDERS, PAGE_Q, PAGE_SIZE, RunFailed, parse_options
from bench.api_parts.server import Server, serving
from bench.api_parts.shop import Shop, prepare
from bench.api_parts.stores import fresh_store
from infra.runtime import run_event_loop

QUERIES = {ORDER_Q: ORDER, PAGE_Q: ORDERS}
TOTALS = re.compile(rb"^totals:\s+(\d+)", re.MULTILINE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200, help="orders placed before counting (200)")
    parser.add_argument("--requests", type=int, default=200, help="counted requests a query (200)")
    parser.add_argument("--warmup", type=int, default=150, help="uncounted requests a query first (150)")
    parser.add_argument("--queries", default=f"{ORDER_Q},{PAGE_Q}", help=f"any of {', '.join(QUERIES)}")
    args = parser.parse_args(argv)
    queries = [q.strip() for q in args.queries.split(",") if q.strip()]
    if set(queries) - set(QUERIES) or min(args.orders, args.requests) < 1 or args.warmup < 0:
        parser.error(f"bad arguments (queries are {', '.join(QUERIES)})")
    config, _ = parse_options(["--orders", str(args.orders), "--stores", "postgres"], None)
    report: dict[str, Any] = {
        "bench": "api_instructions", "orders": args.orders, "requests": args.requests, "warmup": args.warmup,
        "what": "instructions a fresh request costs the API's process in user space (callgrind)",
        "queries": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench_api_instructions_") as tmp:
        work = Path(tmp)
        with fresh_store("postgres", config, work) as env:
            with serving(env, work, "prepare") as server:
                report["placed"], shop = run_event_loop(prepare(server.base, config, env["ADMIN_TOKEN"]))
            with counted_api(env, work) as api:
                for name in queries:
                    report["queries"][name] = count(api, work, name, shop, args.warmup, args.requests)
    print(json.dumps(report))
    for name, figures in report["queries"].items():
        print(f"{name}: {figures['instructions_per_request']:,} instructions a request", file=sys.stderr)
    return 0


def counted_api(env: dict[str, str], work: Path) -> contextlib.AbstractContextManager[Server]:
    """`saga serve --role api` in one process under callgrind, its instrumentation off until asked."""
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={work}/callgrind.%p"]
    # Everything runs some twenty times slower under valgrind, starting included.
    return serving(env, work, "counted", api_workers=1, wrapper=valgrind, within=600)


def count(api: Server, work: Path, name: str, shop: Shop, warmup: int, requests: int) -> dict[str, Any]:
    pid = str(api.process.pid)
    with httpx.Client(base_url=api.base, timeout=120) as client:
        ask(client, name, shop, range(warmup))
        callgrind(pid, "--instr=on")
        callgrind(pid, "--zero")
        started = time.perf_counter()
        ask(client, name, shop, range(warmup, warmup + requests))
        wall = time.perf_counter() - started
        dumps = set(work.glob(f"callgrind.{pid}.*"))
        callgrind(pid, "--dump")
        callgrind(pid, "--instr=off")
    api.check_alive()
    new = sorted(set(work.glob(f"callgrind.{pid}.*")) - dumps)
    if len(new) != 1 or not (found := TOTALS.search(new[0].read_bytes())):
        raise RunFailed(f"callgrind wrote no count for {name}: {[p.name for p in new]}")
    instructions = int(found.group(1))
    return {"instructions_per_request": instructions // requests, "instructions": instructions,
            "counted_wall_s": round(wall, 1)}


def ask(client: httpx.Client, name: str, shop: Shop, numbers: range) -> None:
    """Fresh requests of `name`, one after another, each answer checked."""
    order_ids = [order_id for ids in shop.orders.values() for order_id in ids]
    for number in numbers:
        variables = {"id": order_ids[number % len(order_ids)]} if name == ORDER_Q else {"first": PAGE_SIZE}
        body = orjson.dumps({"query": QUERIES[name], "variables": variables,
                             "extensions": {"request": f"counted-{number}"}})
        answer = client.post("/graphql", content=body, headers={"content-type": "application/json"})
        if answer.status_code != 200 or b'"errors"' in answer.content:
            raise RunFailed(f"{name}: HTTP {answer.status_code}: {answer.text[:500]}")


def callgrind(pid: str, command: str) -> None:
    done = subprocess.run(["callgrind_control", command, pid], capture_output=True, text=True, timeout=120,
                          check=False)
    if done.returncode != 0:
        raise RunFailed(f"callgrind_control {command} failed: {done.stdout}{done.stderr}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RunFailed as error:
        print(f"bench failed: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)

"""Runs: a fresh store, the orders placed on a server of every role, then each auth mode measured on
the API started afresh on that store, each query from load processes of its own, with kept answers
and then with fresh ones (--answers)."""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.api_parts.config import AUTH, ORDER_Q, PAGE_Q, STORES, TOKEN_Q, Config
from bench.api_parts.figures import auth_cost, line_of, median_cost, median_of, per_request, percentiles
from bench.api_parts.load import LoadProcesses
from bench.api_parts.meters import CpuMeter, until_quiet
from bench.api_parts.requests import client_plans, learn_answers
from bench.api_parts.server import Server, answers_kept, graphql_counts, serving
from bench.api_parts.shop import Shop, TokenKey, check_required, customer_tokens, prepare
from bench.api_parts.stores import fresh_store, settle_store
from infra.runtime import run_event_loop


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
        placed, measured = measured_modes(store, config, run, Path(tmp))
    answers: dict[str, Any] = {}
    for answer in config.answers:
        queries = {name: measured[answer, name] for name in (ORDER_Q, PAGE_Q, TOKEN_Q)
                   if (answer, name) in measured}
        answers[answer] = {"queries": queries}
        if (cost := auth_cost(queries)) is not None:
            answers[answer]["auth_cost"] = cost
    return {"store": store, "orders": placed, "answers": answers}


def measured_modes(
    store: str, config: Config, run: int, work: Path
) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    """The orders placed, and each (answers, query)'s figures, on one fresh store."""
    with fresh_store(store, config, work) as env:
        with serving(env, work, "prepare") as server:
            placed, shop = run_event_loop(prepare(server.base, config, env["ADMIN_TOKEN"]))
            server.check_alive()
        # Each mode is measured on a server started afresh on the same store, so that neither
        # inherits the heap and caches of the server that ran the sagas; on PostgreSQL it is the
        # API alone, in --workers processes, as it is deployed to answer reads.
        workers = config.workers if store == "postgres" else None
        measured: dict[tuple[str, str], Any] = {}
        for mode, names in plan(config.auth, run):
            settle_store(store, config)
            key = TokenKey(secrets.token_hex(32))
            mode_env = env if mode == "dev" else {**env, "AUTH_JWT_SECRET": key.auth_jwt_secret}
            with serving(mode_env, work, mode, api_workers=workers) as server:
                tokens = customer_tokens(key, shop, config) if mode == "required" else None
                if tokens is not None:
                    check_required(server.base, shop, tokens)
                for answer in config.answers:
                    for name in names:
                        measured[answer, name] = measure(server, name, answer, shop, tokens, config, run)
                server.check_alive()
    return placed, measured


def measure(
    server: Server, name: str, answer: str, shop: Shop, tokens: list[str] | None, config: Config, run: int
) -> dict[str, Any]:
    fresh = answer == "fresh"
    plans = client_plans(name, shop, config.concurrency, server.host, server.port, tokens, fresh)
    plans = learn_answers(plans, shop, server.host, server.port)
    load = LoadProcesses(server.host, server.port, plans, config.load_processes)
    try:
        load.phase(config.warmup, seed=run)  # connections, caches
        until_quiet(server.process.pid, config.wait_quiet)
        before = graphql_counts(server)
        meter = CpuMeter(server.process.pid, load.pids)
        tally, wall = load.phase(config.seconds, seed=run + 1)
        cpu = meter.stop(wall)
        after = graphql_counts(server)
    finally:
        load.close()
    answered = len(tally.latencies_ns)
    return {
        "requests": answered,
        "requests_per_s": round(answered / wall, 1),
        "latency_ms": percentiles(sorted(ns / 1e6 for ns in tally.latencies_ns)),
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "error_samples": tally.samples,
        "wall_s": round(wall, 2),
        "server_workers": server.workers,
        "load_processes": config.load_processes,
        **per_request(cpu, answered),
        "cpu": cpu,
        "disturbed": cpu["disturbed"],
        "answers_kept": answers_kept(server.workers, before, after),
    }


def run_store(store: str, config: Config) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for index in range(config.runs):
        workers = f"{config.workers} API worker(s)" if store == "postgres" else "one server process"
        print(f"[{store}] run {index + 1}/{config.runs}: {STORES[store]}, {config.orders} orders, "
              f"{config.concurrency} clients in {config.load_processes} load process(es), {workers}, "
              f"{config.seconds:g} s a query, {AUTH[config.auth]}; answers {', '.join(config.answers)}",
              file=sys.stderr, flush=True)
        try:
            result = one_run(store, config, index)
        except Exception as error:  # reported, and the bench fails; the other runs still go
            result = {"store": store, "error": f"{type(error).__name__}: {error}"}
        runs.append(result)
        print(line_of(result), file=sys.stderr, flush=True)
    out: dict[str, Any] = {"what": STORES[store], "median": median_of(runs, config.answers)}
    costs = {answer: cost for answer in config.answers if (cost := median_cost(runs, answer)) is not None}
    if costs:
        out["auth_cost"] = costs
    return {**out, "runs": runs}

"""Every run in its order: each mode at its maximum rate, the peer beside them (the host's load drifts), then
the paced runs; and the report they fill."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from bench.throughput.config import FAILURE_RATES, MODES, Config
from bench.throughput.figures import line_of, median_of
from bench.throughput.in_process import run_in_process
from bench.throughput.peer import run_peer
from bench.throughput.processes import run_processes
from commands.orders import PlaceOrder
from infra.settings import Settings

log = logging.getLogger("bench.saga_throughput")


def new_report(config: Config) -> dict[str, Any]:
    """The report's head: what was run, against which servers; the runs fill in the rest."""
    return {
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
        "cpu_affinity": Settings(_env_file=None).cpu_affinity,  # CPU_AFFINITY, as the roles read it
        "modes": {},
    }


def run_all(
    args: argparse.Namespace, config: Config, commands: Sequence[PlaceOrder], modes: list[str],
    report: dict[str, Any],
) -> None:
    """The maximum-rate runs, the peer next to them (the host's load drifts), then the paced runs."""
    measured = [] if args.paced_only else modes
    # b and b0 price privacy and proof by their ratio: their runs alternate, so the host's drift
    # weighs on both alike.
    paired = [m for m in measured if m in ("b", "b0")] if {"b", "b0"} <= set(measured) else []
    alternating: dict[str, list[dict[str, Any]]] = {mode: [] for mode in paired}
    for index in range(config.runs if paired else 0):
        for mode in paired:
            alternating[mode].append(one_run(mode, config, commands, 0.0, index))
    for mode in measured:
        if mode in alternating:
            runs = alternating[mode]
            report["modes"][mode] = {"what": MODES[mode], "median": median_of(runs), "runs": runs}
        else:
            report["modes"][mode] = {"what": MODES[mode], **run_mode(mode, config, commands)}

    if not args.skip_peer:
        report["peer"] = run_peer(args.peer, config)
        peer_rate = report["peer"]["median"].get("completed_sagas_per_s")
        ours = {mode: report["modes"].get(mode, {}).get("median", {}).get("completed_sagas_per_s")
                for mode in ("b", "c", "d")}
        report["ratios_vs_peer"] = {
            mode: round(rate / peer_rate, 2) for mode, rate in ours.items() if rate and peer_rate
        }
    one_box, grown = (report["modes"].get(mode, {}).get("median", {}).get("completed_sagas_per_s")
                      for mode in ("c", "d"))
    if one_box and grown:
        # What a database per context and replicated queues cost a process per role, on this one machine.
        report["ratio_d_to_c"] = round(grown / one_box, 2)

    rates = {mode: report["modes"].get(mode, {}).get("median", {}).get("completed_sagas_per_s")
             for mode in ("b", "b0")}
    if rates["b"] and rates["b0"]:
        # What sealing personal data and chaining events cost the saga: the share of b0's rate that b lacks,
        # for each pair of runs side by side (the host's speed drifts between pairs more than within one).
        report["privacy_and_proof_cost_of_medians"] = round(1 - rates["b"] / rates["b0"], 3)
        pairs = [(b.get("completed_sagas_per_s"), b0.get("completed_sagas_per_s"))
                 for b, b0 in zip(alternating.get("b", []), alternating.get("b0", []), strict=True)]
        costs = [1 - b / b0 for b, b0 in pairs if b and b0]
        report["privacy_and_proof_cost"] = round(statistics.median(costs), 3) if costs else \
            report["privacy_and_proof_cost_of_medians"]
        report["privacy_and_proof_cost_of_each_pair"] = [round(cost, 3) for cost in costs]

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


def all_verified(report: dict[str, Any]) -> bool:
    """Every mode's and every paced run's checks passed, and nobody interrupted the bench."""
    ok = not report.get("interrupted") and all(m["median"].get("verified") for m in report["modes"].values())
    return ok and all(p["median"].get("verified") for p in report.get("paced", {}).values())


def run_mode(mode: str, config: Config, commands: Sequence[PlaceOrder], rate: float = 0.0) -> dict[str, Any]:
    runs = [one_run(mode, config, commands, rate, index) for index in range(config.runs)]
    return {"median": median_of(runs), "runs": runs}


def one_run(
    mode: str, config: Config, commands: Sequence[PlaceOrder], rate: float, index: int
) -> dict[str, Any]:
    label = mode + (f" paced at {rate:.1f}/s" if rate else "")
    print(f"[{label}] run {index + 1}/{config.runs}: {MODES[mode]}, N={len(commands)}",
          file=sys.stderr, flush=True)
    try:
        if mode in ("c", "d"):
            result = run_processes(config, commands, rate, mode)
        else:
            result = run_in_process(mode, config, commands, rate)
    except Exception as error:
        log.exception("run failed")
        result = {"mode": mode, "error": repr(error), "verified": False}
    print(line_of(result), file=sys.stderr, flush=True)
    return result

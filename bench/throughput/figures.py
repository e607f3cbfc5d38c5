"""The figures: one run's from its timing and the facts its checks read, the medians over runs, and the
lines each prints on stderr."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from typing import Any

from bench.throughput.config import Config
from bench.throughput.load import Timing
from commands.orders import PlaceOrder


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
    if "ratio_d_to_c" in report:
        lines.append(f"  mode d's completed sagas/s to mode c's: {report['ratio_d_to_c']}")
    lines.append("  all checks passed" if report["verified"] else "  SOME CHECKS FAILED")
    print("\n".join(lines), file=sys.stderr, flush=True)


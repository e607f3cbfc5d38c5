"""Figures: percentiles, CPU per request, the cost of a token, medians of the runs, and the summary."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from typing import Any

from bench.api_parts.config import ORDER_Q, TOKEN_Q

CPU_PER_REQUEST = ("server", "client", "postgres", "rabbitmq")


def pct(values: list[float], p: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def percentiles(ms: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of sorted latencies in ms."""
    return {"p50": rounded(pct(ms, 50)), "p95": rounded(pct(ms, 95)), "p99": rounded(pct(ms, 99)),
            "max": rounded(ms[-1] if ms else None)}


def per_request(cpu: dict[str, Any], answered: int) -> dict[str, Any]:
    """CPU-ms a request of each side, and the client's share of all the CPU the measurement used."""
    out: dict[str, Any] = {f"{side}_cpu_ms_per_request": rounded(1000 * cpu[f"{side}_s"] / answered
                                                                  if answered else None, 3)
                           for side in CPU_PER_REQUEST}
    spent = sum(cpu[f"{side}_s"] for side in CPU_PER_REQUEST)
    out["client_cpu_share"] = round(cpu["client_s"] / spent, 3) if spent else None
    return out


def auth_cost(queries: dict[str, Any]) -> dict[str, Any] | None:
    """`order` with a customer token (required mode) against without (dev mode), in one run."""
    without, with_token = queries.get(ORDER_Q), queries.get(TOKEN_Q)
    if without is None or with_token is None:
        return None
    return {
        "requests_per_s_ratio": ratio(with_token["requests_per_s"], without["requests_per_s"]),
        "server_cpu_ratio": ratio(with_token["server_cpu_ms_per_request"],
                                  without["server_cpu_ms_per_request"]),
        "p99_ms": {"without_token": without["latency_ms"]["p99"],
                   "with_token": with_token["latency_ms"]["p99"]},
        "disturbed": without["disturbed"] or with_token["disturbed"],
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if not numerator or not denominator else round(numerator / denominator, 3)


def median_of(runs: list[dict[str, Any]], answers: tuple[str, ...]) -> dict[str, Any]:
    """Per answers mode and query, the medians of the runs that did not fail."""
    ok = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {"runs_ok": len(ok), "runs_failed": len(runs) - len(ok)}
    for answer in answers:
        out[answer] = {name: median_query([r["answers"][answer]["queries"][name] for r in ok])
                       for name in (ok[0]["answers"][answer]["queries"] if ok else ())}
    return out


def median_query(each: list[dict[str, Any]]) -> dict[str, Any]:
    def share(key: str) -> float | None:
        known = [q["answers_kept"][key] for q in each if q["answers_kept"][key] is not None]
        return rounded(statistics.median(known), 4) if known else None

    return {
        "requests_per_s": round(statistics.median(q["requests_per_s"] for q in each), 1),
        "latency_ms": {
            k: rounded(statistics.median(q["latency_ms"][k] for q in each))
            for k in ("p50", "p95", "p99", "max") if all(q["latency_ms"][k] is not None for q in each)
        },
        **{f"{side}_cpu_ms_per_request": rounded(
            statistics.median(q[f"{side}_cpu_ms_per_request"] or 0 for q in each), 3
        ) for side in CPU_PER_REQUEST},
        "client_cpu_share": rounded(statistics.median(q["client_cpu_share"] or 0 for q in each), 3),
        "host_busy_pct": round(statistics.median(q["cpu"]["host_busy_pct"] for q in each)),
        "ran_share": share("ran_share"),
        "kept_share": share("kept_share"),
        "errors": sum(q["errors"] for q in each),
        "disturbed_runs": sum(1 for q in each if q["disturbed"]),
    }


def median_cost(runs: list[dict[str, Any]], answer: str) -> dict[str, Any] | None:
    """Of one answers mode: the medians of the runs' own ratios, each of two measurements made back to
    back, and of their figures.

    A disturbed run's ratio compares a measurement the host took cores from with one it did not, so
    the medians are of the undisturbed runs, unless every run was disturbed.
    """
    measured = [r["answers"][answer] for r in runs if "auth_cost" in r.get("answers", {}).get(answer, {})]
    if not measured:
        return None
    clean = [r for r in measured if not r["auth_cost"]["disturbed"]] or measured
    costs = [r["auth_cost"] for r in clean]

    def median(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return rounded(statistics.median(known), 3) if len(known) == len(values) else None

    def of_both(figure: Callable[[dict[str, Any]], float | None]) -> dict[str, float | None]:
        return {"without_token": median([figure(r["queries"][ORDER_Q]) for r in clean]),
                "with_token": median([figure(r["queries"][TOKEN_Q]) for r in clean])}

    return {
        "requests_per_s_ratio": median([c["requests_per_s_ratio"] for c in costs]),
        "server_cpu_ratio": median([c["server_cpu_ratio"] for c in costs]),
        "requests_per_s": of_both(lambda q: q["requests_per_s"]),
        "p99_ms": of_both(lambda q: q["latency_ms"]["p99"]),
        "runs": len(clean),
        "disturbed_runs": sum(1 for r in measured if r["auth_cost"]["disturbed"]),
    }


def line_of(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"  RUN FAILED: {r['error']}"
    o = r["orders"]
    lines = [f"  {o['placed']} orders of {o['customers']} customers placed and ended in "
             f"{o['place_and_finish_s']} s ({o['completed']} completed, {o['cancelled']} cancelled)"]
    for answer, measured in r["answers"].items():
        for name, q in measured["queries"].items():
            lat = q["latency_ms"]
            cpu = q["cpu"]
            lines.append(f"  {answer} {name}: {q['requests_per_s']:.0f} requests/s; latency p50 {lat['p50']} "
                         f"p95 {lat['p95']} p99 {lat['p99']} ms; host {cpu['host_busy_pct']}% busy; CPU-ms a "
                         f"request: server {q['server_cpu_ms_per_request']}, client "
                         f"{q['client_cpu_ms_per_request']}, PostgreSQL {q['postgres_cpu_ms_per_request']}; "
                         f"ran an operation {q['answers_kept']['ran_share']}")
            if q["disturbed"]:
                lines.append(f"  !!! {answer} {name}: DISTURBED: other processes took {q['cpu']['others_s']} "
                             "CPU-s while it was measured; its figures are not comparable")
            if q["errors"]:
                lines.append(f"  !!! {answer} {name}: {q['errors']} ERRORS {q['error_kinds']}: "
                             f"{q['error_samples'][:2]}")
        if "auth_cost" in measured:
            lines.append(f"  {answer} {cost_line(measured['auth_cost'])}")
    return "\n".join(lines)


def cost_line(cost: dict[str, Any]) -> str:
    p99 = cost["p99_ms"]
    return (f"a customer token: {cost.get('requests_per_s_ratio')}x the requests/s, "
            f"{cost.get('server_cpu_ratio')}x the server CPU a request; p99 {p99['with_token']} ms with, "
            f"{p99['without_token']} ms without")


def median_line(q: dict[str, Any]) -> str:
    lat = q["latency_ms"]
    line = (f"{q['requests_per_s']:.0f} requests/s, p50 {lat.get('p50')} p95 {lat.get('p95')} p99 "
            f"{lat.get('p99')} ms; CPU-ms a request: server {q['server_cpu_ms_per_request']}, client "
            f"{q['client_cpu_ms_per_request']} ({100 * (q['client_cpu_share'] or 0):.0f}% of the CPU used), "
            f"PostgreSQL {q['postgres_cpu_ms_per_request']}; ran an operation {q['ran_share']}")
    if q["errors"]:
        line += f"  !!! {q['errors']} ERRORS"
    if q["disturbed_runs"]:
        line += f"  ({q['disturbed_runs']} disturbed run(s))"
    return line


def summarize(report: dict[str, Any]) -> None:
    lines = [f"api: {report['orders']} orders, {report['concurrency']} clients in {report['load_processes']} "
             f"load process(es), {report['workers']} API worker(s) on PostgreSQL, {report['seconds']:g} s a "
             f"query, auth {report['auth']}, answers {','.join(report['answers'])}, medians of "
             f"{report['runs']} run(s); client and server share {report['cores']} cores"]
    for store, result in report["stores"].items():
        m = result["median"]
        for answer in report["answers"]:
            for name, q in m.get(answer, {}).items():
                lines.append(f"  {store} {answer} {name}: {median_line(q)}")
            if (cost := result.get("auth_cost", {}).get(answer)) is not None:
                disturbed = (f"  (median of {cost['runs']} run(s); {cost['disturbed_runs']} disturbed)"
                             if cost["disturbed_runs"] else "")
                lines.append(f"  {store} {answer} {cost_line(cost)}{disturbed}")
        if m["runs_failed"]:
            lines.append(f"  !!! {store}: {m['runs_failed']} RUN(S) FAILED")
    if report["errors"]:
        lines.append(f"!!! {report['errors']} REQUESTS FAILED (non-200, GraphQL errors or wrong answers): "
                     "these figures are not valid")
    else:
        lines.append("  no request failed")
    print("\n".join(lines), file=sys.stderr, flush=True)

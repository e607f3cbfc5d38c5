"""The peer: the same saga on the eventsourcing library's own System runner (../shared/bench/peer_es_saga.py),
run with the same N and the same server, for the ratios of modes b and c to its completed sagas/s."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.throughput.config import Config
from bench.throughput.figures import rounded
from bench.throughput.stores import settle


def run_peer(path: Path, config: Config) -> dict[str, Any]:
    server = config.server
    env = {
        **os.environ,
        "BENCH_PG_HOST": os.environ.get("BENCH_PG_HOST", server.host),
        "BENCH_PG_PORT": os.environ.get("BENCH_PG_PORT", str(server.port)),
        "BENCH_PG_USER": os.environ.get("BENCH_PG_USER", server.user),
        "BENCH_PG_PASSWORD": os.environ.get("BENCH_PG_PASSWORD", server.password or "postgres"),
    }
    runs: list[dict[str, Any]] = []
    for index in range(config.runs):
        print(f"[peer] run {index + 1}/{config.runs}: {path.name} -n {config.orders}",
              file=sys.stderr, flush=True)
        settle(config)
        try:
            done = subprocess.run(
                [sys.executable, str(path), "-n", str(config.orders), "--timeout", str(config.timeout)],
                env=env, capture_output=True, text=True, timeout=config.timeout + 300, check=False,
            )
            sys.stderr.write("".join(f"  {line}\n" for line in done.stderr.splitlines()[-8:]))
            last = [line for line in done.stdout.splitlines() if line.strip()]
            result: dict[str, Any] = json.loads(last[-1]) if last else {"error": "no output"}
            if done.returncode != 0:
                result["error"] = f"exit status {done.returncode}"
        except (subprocess.TimeoutExpired, json.JSONDecodeError, OSError) as error:
            result = {"error": repr(error)}
        runs.append(result)
    ok = [r for r in runs if "error" not in r]
    median: dict[str, Any] = {"verified": bool(ok) and len(ok) == len(runs)}
    if ok:
        for key in ("elapsed_s", "sagas_per_s", "completed_sagas_per_s", "events_per_s"):
            median[key] = round(statistics.median(r[key] for r in ok), 3)
        median["latency_ms"] = {
            k: rounded(statistics.median(r["latency_ms"][k] for r in ok)) for k in ("p50", "p95", "p99")
        }
        median["runner"] = ok[0].get("runner")
    return {"median": median, "runs": runs}

"""Where the latency goes: the gaps between an order's consecutive events in two applications, one per
relay, bus, consumer and transaction hop."""

from __future__ import annotations

import itertools
import statistics
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from bench.throughput.figures import pct, rounded
from bench.throughput.load import PAGE
from bench.throughput.verify import Before
from commands.following import stored_state as decode_state
from infra.bootstrap import System


def hop_latencies(system: System, before: Before, order_ids: set[uuid.UUID]) -> dict[str, Any]:
    """Where the latency goes: the time between an order's consecutive events in two applications.

    Every event carries its order's id as correlation id, so each order's events across the
    six logs, in timestamp order, show each hop (relay, bus, consumer, transaction) as a gap.
    """
    timeline: dict[uuid.UUID, list[tuple[datetime, str]]] = defaultdict(list)
    for app in system:
        position = before.positions[app.name]
        while True:
            page = app.recorder.select_notifications(position, PAGE, inclusive_of_start=False)
            for notification in page:
                state = decode_state(app.mapper, notification)
                correlation = state.get("correlation_id")
                if correlation and uuid.UUID(correlation) in order_ids:
                    timeline[uuid.UUID(correlation)].append(
                        (datetime.fromisoformat(state["timestamp"]), app.name)
                    )
            if len(page) < PAGE:
                break
            position = page[-1].id
    gaps: dict[str, list[float]] = defaultdict(list)
    hops_per_order = []
    for events in timeline.values():
        events.sort()
        hops = 0
        for (t0, a0), (t1, a1) in itertools.pairwise(events):
            if a0 != a1:
                gaps[f"{a0}->{a1}"].append((t1 - t0).total_seconds() * 1000)
                hops += 1
        hops_per_order.append(hops)
    every = sorted(g for values in gaps.values() for g in values)
    return {
        "hops_per_order_median": statistics.median(hops_per_order) if hops_per_order else None,
        "any_hop_ms": {"p50": rounded(pct(every, 50)), "p95": rounded(pct(every, 95)),
                       "p99": rounded(pct(every, 99))} if len(every) > 1 else None,
        "by_hop_ms": {
            hop: {"n": len(v), "p50": rounded(pct(sorted(v), 50)), "p95": rounded(pct(sorted(v), 95))}
            for hop, v in sorted(gaps.items(), key=lambda kv: -len(kv[1])) if len(v) > 1
        },
    }

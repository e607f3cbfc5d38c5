"""What `saga demo` prints at the end: what became of each order, as a table and a line.

`summarize` is a pure function of the outcomes: counts by outcome and by reason,
throughput, and the latency from placing to COMPLETED or CANCELLED.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

TERMINAL = frozenset({"COMPLETED", "CANCELLED"})


@dataclass
class Outcome:
    """What became of one order, as the client saw it."""

    order_id: str | None = None
    status: str | None = None
    failure_reason: str | None = None
    placed_at: float | None = None  # monotonic time of the placeOrder response
    finished_at: float | None = None  # monotonic time of the response that showed a terminal status
    error_code: str | None = None  # why placing it failed

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def latency(self) -> float | None:
        if self.placed_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.placed_at


@dataclass(frozen=True)
class Summary:
    orders: int
    placed: int
    completed: int
    cancelled: dict[str, int]  # by the failure reason: its text before any ':'
    unfinished: int  # placed, but not COMPLETED or CANCELLED within the timeout
    place_errors: dict[str, int]  # by error code; TIMEOUT: not placed before the timeout
    elapsed: float
    throughput: float  # finished orders per second of the run
    p50: float | None
    p95: float | None
    p99: float | None

    @property
    def cancelled_total(self) -> int:
        return sum(self.cancelled.values())

    @property
    def finished(self) -> int:
        return self.completed + self.cancelled_total

    @property
    def all_finished(self) -> bool:
        """Every order was placed and reached COMPLETED or CANCELLED (a cancellation is an outcome too)."""
        return self.finished == self.orders


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least p% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def reason_code(reason: str | None) -> str:
    text = (reason or "").split(":", 1)[0].strip()
    return text or "(no reason)"


def summarize(outcomes: Sequence[Outcome], elapsed: float) -> Summary:
    completed = sum(1 for o in outcomes if o.status == "COMPLETED")
    cancelled = Counter(reason_code(o.failure_reason) for o in outcomes if o.status == "CANCELLED")
    # An order without an error and without an id was not placed before the timeout.
    errors = Counter(o.error_code or "TIMEOUT" for o in outcomes if o.order_id is None)
    placed = sum(1 for o in outcomes if o.order_id is not None)
    unfinished = sum(1 for o in outcomes if o.order_id is not None and not o.finished)
    latencies = [o.latency for o in outcomes if o.latency is not None]
    finished = completed + sum(cancelled.values())
    return Summary(
        orders=len(outcomes), placed=placed, completed=completed,
        cancelled=dict(sorted(cancelled.items())), unfinished=unfinished,
        place_errors=dict(sorted(errors.items())), elapsed=elapsed,
        throughput=finished / elapsed if elapsed > 0 else 0.0,
        p50=percentile(latencies, 50), p95=percentile(latencies, 95), p99=percentile(latencies, 99),
    )


def summary_table(summary: Summary) -> Table:
    table = Table(title=f"saga demo: {summary.orders} order(s) in {summary.elapsed:.1f} s")
    table.add_column("outcome")
    table.add_column("value", justify="right")
    table.add_row("placed", str(summary.placed))
    table.add_row("completed", str(summary.completed))
    table.add_row("cancelled", str(summary.cancelled_total))
    for reason, count in summary.cancelled.items():
        table.add_row(f"  {escape(reason)}", str(count), style="dim")
    table.add_row("unfinished", str(summary.unfinished))
    table.add_row("not placed", str(sum(summary.place_errors.values())))
    for code, count in summary.place_errors.items():
        table.add_row(f"  {escape(code)}", str(count), style="dim")
    table.add_row("throughput", f"{summary.throughput:.2f} finished/s")
    for name, value in (("p50", summary.p50), ("p95", summary.p95), ("p99", summary.p99)):
        table.add_row(f"latency {name}", "-" if value is None else f"{value * 1000:.0f} ms")
    return table


def finished_line(summary: Summary) -> str:
    return (f"{summary.finished} of {summary.orders} order(s) finished: {summary.completed} completed, "
            f"{summary.cancelled_total} cancelled, {summary.unfinished} unfinished, "
            f"{sum(summary.place_errors.values())} not placed")

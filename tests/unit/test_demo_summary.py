"""The demo's summary: outcomes counted, reasons grouped, percentiles by nearest rank."""

from __future__ import annotations

import pytest

from infra.cli.demo_summary import Outcome, percentile, summarize

pytestmark = pytest.mark.unit


def finished(status: str, latency: float, reason: str | None = None) -> Outcome:
    return Outcome(order_id="o", status=status, failure_reason=reason, placed_at=100.0,
                   finished_at=100.0 + latency)


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0], 99) == 3.0
    assert percentile([7.0], 0) == 7.0
    assert percentile([], 50) is None


def test_summary_counts_outcomes_groups_reasons_and_measures_latency() -> None:
    outcomes = [
        finished("COMPLETED", 1.0),
        finished("COMPLETED", 2.0),
        finished("COMPLETED", 3.0),
        finished("CANCELLED", 4.0, "PAYMENT_FAILED: card declined"),
        finished("CANCELLED", 5.0, "PAYMENT_FAILED: insufficient funds"),
        finished("CANCELLED", 6.0, "SHIPPING_FAILED: carrier refused: no route"),
        finished("CANCELLED", 7.0, None),
        Outcome(order_id="o", status="PROCESSING", placed_at=100.0),
        Outcome(error_code="VALIDATION_ERROR"),
        Outcome(error_code="HTTP_503"),
        Outcome(error_code="HTTP_503"),
        Outcome(),
    ]
    summary = summarize(outcomes, elapsed=3.5)
    assert summary.orders == 12 and summary.placed == 8
    assert summary.completed == 3
    assert summary.cancelled == {"(no reason)": 1, "PAYMENT_FAILED": 2, "SHIPPING_FAILED": 1}
    assert summary.finished == 7 and summary.unfinished == 1
    assert summary.place_errors == {"HTTP_503": 2, "TIMEOUT": 1, "VALIDATION_ERROR": 1}
    assert summary.throughput == pytest.approx(2.0)
    assert (summary.p50, summary.p95, summary.p99) == pytest.approx((4.0, 7.0, 7.0))
    assert not summary.all_finished


def test_a_run_where_every_order_completed_or_was_cancelled_is_all_finished() -> None:
    run = [finished("COMPLETED", 0.5), finished("CANCELLED", 0.7, "payment declined")]
    assert summarize(run, elapsed=1.0).all_finished


def test_an_order_not_finished_or_not_placed_is_not_all_finished_and_no_latency_is_none() -> None:
    not_placed = Outcome(error_code="HTTP_503")
    assert not summarize([finished("COMPLETED", 0.5), not_placed], elapsed=1.0).all_finished
    empty = summarize([Outcome(order_id="o", status="PENDING")], elapsed=0.0)
    assert (empty.p50, empty.throughput, empty.all_finished) == (None, 0.0, False)

"""Each role serves its share of the saga's metrics at /metrics: as separate processes, and all in one."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from infra.bootstrap import bootstrap
from tests.e2e.processes import Cluster
from tests.e2e.test_logs import NO_FAILURES, all_in_one, place_and_follow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FOLLOWED = {("order_summary", "Orders"), ("order_summary", "OrderFulfillment"),
            ("payment_status", "Payments"), ("stock_levels", "Inventory"), ("shipment_tracking", "Shipping"),
            ("notification_log", "Notifications"), ("saga_progress", "OrderFulfillment")}


def scrape(base: str) -> Samples:
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text) for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def projection_lags(samples: Samples) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["projection"], dict(labels)["application"]): lag
        for (name, labels), lag in samples.items() if name == "saga_projection_lag_notifications"
    }


def caught_up(samples: Samples) -> bool:
    lags = projection_lags(samples)
    return set(lags) >= FOLLOWED and not any(lags.values())


def one_saga_timed(samples: Samples) -> bool:
    return value(samples, "saga_outcomes_total", outcome="completed") == 1 and all(
        value(samples, "saga_step_seconds_count", step=step, outcome="succeeded") == 1
        for step in ("payment", "inventory", "shipping", "notification")
    )


def scrape_until(base: str, check: Callable[[Samples], bool], within: float = 15.0) -> Samples:
    """The metrics at `base` once `check` holds of them (the last scrape fails the test if it never does)."""
    deadline = time.monotonic() + within
    samples = scrape(base)
    while not check(samples) and time.monotonic() < deadline:
        time.sleep(0.2)
        samples = scrape(base)
    assert check(samples), sorted(samples.items())
    return samples


def test_the_projector_serves_the_projections_lag_and_the_relay_times_each_step(cluster: Cluster) -> None:
    cluster.env |= NO_FAILURES
    with bootstrap(cluster.settings) as system:
        system.inventory.seed()
    cluster.start_all(["orders", "payments", "inventory", "shipping", "notifications", "saga", "projector",
                       "api"])
    cluster.start("relay")
    roles = ("api", "projector", "relay", "payments")
    [api], [projector], [relay], [payments] = (cluster.role(role) for role in roles)

    place_and_follow(f"http://127.0.0.1:{api.port}")

    scrape_until(f"http://127.0.0.1:{projector.port}", caught_up)
    scrape_until(f"http://127.0.0.1:{relay.port}", one_saga_timed)
    worker = scrape(f"http://127.0.0.1:{payments.port}")
    assert value(worker, "saga_messages_consumed_total", queue="payments", outcome="done") == 1
    assert not projection_lags(worker)  # a role that does not project has no lag to report


def test_the_all_in_one_process_serves_the_projections_lag_and_the_step_latency(tmp_path: Path) -> None:
    with all_in_one(tmp_path, tmp_path / "serve.log", **NO_FAILURES) as base:
        place_and_follow(base)
        scrape_until(base, lambda samples: caught_up(samples) and one_saga_timed(samples))

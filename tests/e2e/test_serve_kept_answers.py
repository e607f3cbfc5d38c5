"""`saga serve --role api` on PostgreSQL keeps answers of `order(id)` until the read model moves.

A projection writes its rows and its position in one transaction; here a row
is changed behind the projections' backs, with no position moving, which only
a kept answer can fail to show. An answer is kept from a request's second sight.
Moving a position then shows the row as it is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from infra.readstore.opening import open_read_store
from infra.settings import Settings
from projections import tracking
from projections.catalog import migrate
from projections.order_summary import OrderSummary
from projections.store import ReadStore
from tests.api_harness import order_row
from tests.e2e.test_serve import free_port, wait_for_health
from tests.integration.test_read_model_contract import record_of

pytestmark = pytest.mark.e2e

ORDER = "query($id: ID!) { order(id: $id) { id failureReason } }"


@pytest.fixture
def served_api(postgres_settings: Settings, rabbitmq_url: str, rabbit_namespace: str,
               tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": str(postgres_settings.database_url), "AMQP_URL": rabbitmq_url,
           "BUS_NAMESPACE": rabbit_namespace}
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "serve", "--role", "api", "--port", str(port)],
            env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT,
        )
    process.stdout = log.open("rb")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(process, base, within=60)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


async def written(store: ReadStore, statement: str, *args: object) -> None:
    async with store.transaction() as tx:
        await tx.execute(statement, *args)


def failure_reason(base: str, order_id: str) -> str | None:
    answer = httpx.post(f"{base}/graphql", json={"query": ORDER, "variables": {"id": order_id}}, timeout=10)
    assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
    reason: str | None = answer.json()["data"]["order"]["failureReason"]
    return reason


async def test_served_answers_are_kept_while_no_projection_moves_and_not_after(
    postgres_settings: Settings, served_api: str,
) -> None:
    store = await open_read_store(postgres_settings)
    try:
        await migrate(store)
        order = record_of(replace(order_row(status="CANCELLED"), failure_reason="declined"))
        async with store.transaction() as tx:
            await OrderSummary().save(tx, {order.id: order})
        assert failure_reason(served_api, str(order.id)) == "declined"  # seen once: nothing kept
        await written(store, "UPDATE read_orders SET failure_reason = 'refused' WHERE id = $1", order.id)
        assert failure_reason(served_api, str(order.id)) == "refused"  # seen again: read, and kept
        await written(store, "UPDATE read_orders SET failure_reason = 'out of stock' WHERE id = $1", order.id)
        assert failure_reason(served_api, str(order.id)) == "refused"  # kept: no position moved
        async with store.transaction() as tx:
            await tracking.advance(tx, OrderSummary.name, "Orders", 1)
        assert failure_reason(served_api, str(order.id)) == "out of stock"
    finally:
        await store.close()

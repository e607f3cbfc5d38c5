"""Every context on a database of its own: five hundred orders through the whole saga, in one process.

DATABASE_URL names a database that does not exist, so whatever still read the shared
database would fail. Afterwards each database holds its own context's events and no other's,
and the read store, on a database of its own too, has every order. One context's database
going down takes down that context's store alone, and readiness names only it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psycopg
import pytest

from commands.inventory import SEED_CATALOGUE, Restock
from infra.bootstrap import bootstrap
from infra.eventstore.verification import verify
from infra.settings import PostgresDsn, Settings
from process_managers.state import SagaStatus
from tests.context_databases import assert_each_database_holds_only_its_own_events, own_databases, settings_on
from tests.integration.test_readiness_down import shut_out
from tests.integration.test_saga_at_volume import (
    ORDERS,
    TOP_UP,
    all_finished,
    assert_money_and_stock_conserved,
    place_many,
)
from tests.saga_harness import WORKER_ROLES, running


@pytest.fixture
def databases(postgres_server: PostgresDsn) -> Iterator[dict[str, PostgresDsn]]:
    with own_databases(postgres_server) as databases:
        yield databases


@pytest.fixture
def settings(databases: dict[str, PostgresDsn], postgres_server: PostgresDsn) -> Settings:
    return settings_on(databases, postgres_server, failure_seed=11, postgres_pool_size=2)


def summarised_orders(read: PostgresDsn) -> int:
    """How many orders the read store's order summary holds."""
    with psycopg.connect(read.url) as connection:
        row = connection.execute("SELECT count(*) FROM read_orders").fetchone()
        return int(row[0]) if row else 0


async def until_summarised(read: PostgresDsn, count: int, within: float = 60.0) -> int:
    deadline = time.monotonic() + within
    seen = await asyncio.to_thread(summarised_orders, read)
    while seen < count and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        seen = await asyncio.to_thread(summarised_orders, read)
    return seen


async def test_five_hundred_orders_with_each_context_on_its_own_database_all_end_and_conserve_money_and_stock(
    settings: Settings, databases: dict[str, PostgresDsn],
) -> None:
    async with running(settings, roles=(*WORKER_ROLES, "projector"), gateway=None, carrier=None,
                       notifier=None) as system:
        for product in SEED_CATALOGUE:
            system.inventory.restock(Restock(product_id=product.product_id, quantity=TOP_UP))
        order_ids = await asyncio.to_thread(place_many, system, ORDERS, 11)
        await all_finished(system, order_ids)

        outcomes = {system.sagas.get_saga(o).status for o in order_ids}
        assert outcomes == {SagaStatus.COMPLETED, SagaStatus.COMPENSATED}
        assert_money_and_stock_conserved(system, order_ids)
        chains = verify(system.applications)
        assert chains.verified and sum(app.unchained_events for app in chains.applications) == 0
        assert await until_summarised(databases["read"], ORDERS) == ORDERS

    assert_each_database_holds_only_its_own_events(databases)


def test_a_context_s_database_down_takes_down_its_store_alone_and_readiness_names_only_it(
    settings: Settings, databases: dict[str, PostgresDsn], postgres_server: PostgresDsn,
) -> None:
    with bootstrap(settings.model_copy(update={"postgres_pool_size": 1})) as system:
        assert len(system.applications) == 6 and system.check() == {"status": "ok"}
        shut_out(postgres_server, databases["payments"].dbname, allowed=False)
        try:
            down = system.check()
        finally:
            shut_out(postgres_server, databases["payments"].dbname, allowed=True)

    assert down["status"] == "unavailable"
    assert down["down"] == ["event store: Payments"]

"""Every context on a database of its own, every role a process of its own, on RabbitMQ.

`saga migrate` creates each context's tables in its own database; each worker role and the
relay then run as `saga serve --role R` processes, and five hundred orders with the default
failure rates go through the whole saga. DATABASE_URL names a database that does not exist,
so a process that still read the shared database would fail. The stores then prove that every
saga ended and nothing was lost or done twice, and that each database holds only its own
context's events.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.bootstrap import System
from infra.settings import PostgresDsn, Settings
from tests.context_databases import assert_each_database_holds_only_its_own_events, own_databases, settings_on
from tests.e2e.conftest import FAILURE_SEED
from tests.e2e.processes import Broker, Cluster
from tests.e2e.test_processes import (
    SagaEnds,
    assert_each_order_charged_at_most_once,
    assert_every_saga_ended_once,
    assert_nothing_parked,
    assert_stock_moved_once_per_order,
    start_system,
)
from tests.integration.test_saga_at_volume import assert_money_and_stock_conserved, place_many

ORDERS = 500
ALL_FINISHED_WITHIN = 240.0


@pytest.fixture
def databases(postgres_server: PostgresDsn) -> Iterator[dict[str, PostgresDsn]]:
    with own_databases(postgres_server) as databases:
        yield databases


@pytest.fixture
def cluster_settings(
    databases: dict[str, PostgresDsn], postgres_server: PostgresDsn, rabbitmq_url: str, rabbit_namespace: str,
) -> Settings:
    """Each context's own database, this test's bus, reproducible failures at the default rates."""
    return settings_on(databases, postgres_server, amqp_url=rabbitmq_url, bus_namespace=rabbit_namespace,
                       failure_seed=FAILURE_SEED, create_table=False, postgres_pool_size=2)


def test_five_hundred_orders_with_each_context_on_its_own_database_and_each_role_a_process_lose_nothing(
    cluster: Cluster, system: System, broker: Broker | None, databases: dict[str, PostgresDsn],
) -> None:
    start_system(cluster)
    ends = SagaEnds(system.sagas)

    order_ids = place_many(system, ORDERS, seed=FAILURE_SEED)
    ends.wait_for(ORDERS, within=ALL_FINISHED_WITHIN)

    assert len(set(order_ids)) == ORDERS
    outcomes = assert_every_saga_ended_once(system, order_ids)
    assert_each_order_charged_at_most_once(system, outcomes)
    assert_stock_moved_once_per_order(system, outcomes)
    assert_money_and_stock_conserved(system, order_ids)
    assert_nothing_parked(broker, cluster)
    assert_each_database_holds_only_its_own_events(databases)

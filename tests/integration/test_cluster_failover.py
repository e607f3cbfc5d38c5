"""A node of a three-node RabbitMQ cluster dies mid-load: nothing is lost, nothing doubled (DESIGN §12).

Every role runs on quorum queues against a cluster of its own (`infra.messaging.cluster`,
ports 5701 to 5703), with AMQP_URL listing the three nodes. The clients all connect to the
first; it is stopped while 300 orders go through the saga, which all end while it is down,
and started again for ten more. The clients move to the next node, subscribe again and send
again what was not confirmed: every saga ends, money and stock add up, and no payment is
charged twice.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from commands.inventory import SEED_CATALOGUE, Restock
from infra.messaging import cluster
from infra.messaging.rabbitmq import RabbitBus
from infra.settings import Settings
from process_managers.state import SagaStatus
from tests.conftest import unavailable
from tests.integration.test_saga_at_volume import (
    TOP_UP,
    all_finished,
    assert_money_and_stock_conserved,
    place_many,
)
from tests.saga_harness import running

pytestmark = pytest.mark.integration

ORDERS = 300


@pytest.fixture(scope="module")
def nodes() -> Iterator[list[cluster.Node]]:
    if os.geteuid() != 0 or shutil.which("rabbitmq-server") is None:
        unavailable("a RabbitMQ cluster", "needs root and the rabbitmq-server package")
    base = Path("/var/lib/rabbitmq") / f"saga-cluster-failover-{uuid4().hex[:6]}"
    members = cluster.nodes(base, port=5701, prefix="fo-")  # beside the other clusters of this host
    try:
        cluster.start(members, fresh=True)
    except Exception as error:
        cluster.stop(members)
        unavailable("a RabbitMQ cluster", error)
    yield members
    cluster.stop(members)
    shutil.rmtree(base, ignore_errors=True)


async def test_three_hundred_orders_all_end_once_while_the_clients_node_is_stopped_and_started(
    nodes: list[cluster.Node], postgres_settings: Settings, rabbit_namespace: str,
) -> None:
    first = nodes[0]
    url = cluster.amqp_url(nodes)
    settings = postgres_settings.model_copy(update={
        "amqp_url": url, "bus_namespace": rabbit_namespace, "queue_type": "quorum", "failure_seed": 11,
        "postgres_pool_size": 5})
    bus = RabbitBus(url, namespace=rabbit_namespace, retry_delays=(0.2, 0.5, 1.0), queue_type="quorum",
                    reconnect_interval=0.5)
    async with running(settings, bus, gateway=None, carrier=None, notifier=None) as system:
        for product in SEED_CATALOGUE:
            system.inventory.restock(Restock(product_id=product.product_id, quantity=TOP_UP))
        placing = asyncio.create_task(asyncio.to_thread(place_many, system, ORDERS, 11))
        await asyncio.sleep(2)  # mid-load: orders placed and flowing through every queue

        await asyncio.to_thread(cluster.stop_node, first)
        assert cluster.members(nodes[1]) == {nodes[1].node, nodes[2].node}
        order_ids = await placing
        await all_finished(system, order_ids, within=60)  # on the other two nodes: the first is down
        await asyncio.to_thread(cluster.start_node, first)
        order_ids += await asyncio.to_thread(place_many, system, 10, 12)

        await all_finished(system, order_ids, within=30)
        outcomes = {system.sagas.get_saga(o).status for o in order_ids}
        assert outcomes <= {SagaStatus.COMPLETED, SagaStatus.COMPENSATED}
        assert_money_and_stock_conserved(system, order_ids)  # a payment charged twice would break it

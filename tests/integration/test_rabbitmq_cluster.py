"""The three-node RabbitMQ cluster the scale-out tests run on (`infra.messaging.cluster`).

Started fresh, its three nodes answer on their own ports as one cluster: a quorum queue
declared through one node is there through the others, keeps its messages while that node
is stopped, and the node rejoins when started again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import aio_pika
import pytest

from infra.messaging import cluster
from tests.conftest import unavailable

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[cluster.Node]]:
    if os.geteuid() != 0 or shutil.which("rabbitmq-server") is None:
        unavailable("a RabbitMQ cluster", "needs root and the rabbitmq-server package")
    base = Path("/var/lib/rabbitmq") / f"saga-cluster-test-{uuid4().hex[:6]}"
    members = cluster.nodes(base, port=5691, prefix="test-")  # beside a cluster started by hand
    try:
        url = cluster.start(members, fresh=True)
    except Exception as error:
        cluster.stop(members)
        unavailable("a RabbitMQ cluster", error)
    assert url.count("amqp://") == 3
    yield members
    cluster.stop(members)
    shutil.rmtree(base, ignore_errors=True)


async def declare_and_publish(url: str, queue: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        for body in bodies:
            await channel.default_exchange.publish(aio_pika.Message(body, delivery_mode=2), routing_key=queue)


async def drain(url: str, queue: str) -> list[bytes]:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.get_queue(queue)
        found = []
        while (message := await declared.get(no_ack=True, fail=False)) is not None:
            found.append(message.body)
        await channel.queue_delete(queue, if_unused=False, if_empty=False)  # quorum: no if-unused
        return found


def test_the_cluster_s_three_nodes_answer_as_one(nodes: list[cluster.Node]) -> None:
    first, second, third = nodes
    assert cluster.members(second) == {node.node for node in nodes}
    queue, bodies = f"cluster-probe-{uuid4().hex[:6]}", [b"one", b"two", b"three"]

    asyncio.run(declare_and_publish(first.url, queue, bodies))

    assert asyncio.run(drain(third.url, queue)) == bodies


def test_a_quorum_queue_keeps_its_messages_while_a_node_is_down_and_the_node_rejoins(
    nodes: list[cluster.Node],
) -> None:
    first, second, third = nodes
    queue, bodies = f"cluster-probe-{uuid4().hex[:6]}", [f"message {i}".encode() for i in range(20)]
    asyncio.run(declare_and_publish(first.url, queue, bodies))

    cluster.stop_node(first)
    try:
        assert cluster.members(second) == {second.node, third.node}
        assert asyncio.run(drain(second.url, queue)) == bodies
    finally:
        cluster.start_node(first)

    assert cluster.members(first) == {node.node for node in nodes}

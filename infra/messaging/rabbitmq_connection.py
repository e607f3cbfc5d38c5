"""Connections to a RabbitMQ broker that may be a cluster: `AMQP_URL` lists its nodes, comma-separated.

A client talks to one node at a time; any node serves every queue of a cluster (a quorum
queue lives on several). aio-pika's robust connection takes one URL and, when the
connection is lost, tries that same URL again for ever, which is no help when its node
is the one that died. Its maintainers' advice for a cluster is a connection that moves
round the nodes on reconnect, so `NodeRotatingConnection` is aio-pika's
`RobustConnection` whose every connection attempt after the first goes to the next node
of the list: its channels, queues, bindings and consumers are restored there as they
would be on the same node, and a publish that was not confirmed fails for the caller to
send again (the relay does, from its last recorded position).

Each node is a full URL (`amqp://user:password@host:port/vhost`), all of one virtual host;
the short form that lists bare `host:port`s after the first URL is refused, naming the
part, so that no node's credentials or virtual host are guessed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

from infra.amqp_nodes import broker_urls

logger = logging.getLogger(__name__)

class NodeRotatingConnection(aio_pika.RobustConnection):
    """A robust connection that, on each reconnect, tries the next node of its list (`nodes`)."""

    def __init__(self, url: URL, loop: asyncio.AbstractEventLoop | None = None, *,
                 nodes: Sequence[str] = (), **kwargs: Any) -> None:
        self._nodes = [URL(node) for node in nodes] or [URL(url)]
        self._at = self._nodes.index(URL(url)) if URL(url) in self._nodes else 0
        super().__init__(url, loop=loop, **kwargs)
        self._tried = False

    @property
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, value: Any) -> None:
        # aio-pika clears the transport right before each connection attempt: the hook to move
        # on. The first attempt keeps the node it was made for; `_tried` is unset while the
        # base class initialises.
        if value is None and hasattr(self, "_tried"):
            if self._tried and not self._close_called:
                self._move_on()
            self._tried = True
        self._transport = value

    def _move_on(self) -> None:
        if len(self._nodes) > 1:
            self._at = (self._at + 1) % len(self._nodes)
            self.url = self._nodes[self._at]
            logger.info("connecting to the next node of AMQP_URL, %s", self)


async def connect_robust(
    amqp_url: str, *, attempt_within: float, reconnect_interval: float
) -> AbstractRobustConnection:
    """A robust connection to the first node of AMQP_URL that answers, moving round them on reconnect."""
    nodes = broker_urls(amqp_url)
    failure: BaseException | None = None
    for start in range(len(nodes)):
        try:
            return await aio_pika.connect_robust(
                nodes[start], timeout=attempt_within, reconnect_interval=reconnect_interval,
                connection_class=NodeRotatingConnection, nodes=nodes)
        except (*CONNECTION_EXCEPTIONS, TimeoutError) as error:
            failure = error
            if start + 1 < len(nodes):  # the last node's failure is the caller's to report
                logger.warning("node %d of AMQP_URL does not answer, trying the next: %r", start + 1, error)
    assert failure is not None
    raise failure


async def connect(amqp_url: str, *, attempt_within: float) -> AbstractConnection:
    """A plain connection to the first node of AMQP_URL that answers, for a short task (a probe, a CLI)."""
    nodes = broker_urls(amqp_url)
    for node in nodes[:-1]:
        try:
            return await aio_pika.connect(node, timeout=attempt_within)
        except (*CONNECTION_EXCEPTIONS, TimeoutError):
            continue
    return await aio_pika.connect(nodes[-1], timeout=attempt_within)

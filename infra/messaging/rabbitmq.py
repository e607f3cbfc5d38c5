"""The RabbitMQ adapter of the Bus port, on aio-pika.

Topology, every name prefixed by `<namespace>.` when a namespace is given:
durable topic exchanges `saga.events` and `saga.commands`; per consumer role a
durable queue `<queue>` bound with its subscription's keys; TTL queues
`<queue>.retry.<n>` that dead-letter back to `<queue>` through the default
exchange, so a retry returns to this consumer only; and `<queue>.dead`, where
messages are parked with the error in their headers (see `rabbitmq_consumer`),
and read, to list or redrive them, by one process at a time (`rabbitmq_parking`).
The consumer queues it is built with (`topology`) can be declared before their
consumers run, so that messages for a role started later wait for it, and
their consumers counted, so that readiness can name a role nobody runs.
Every queue is of one type, classic or quorum (`rabbitmq_queues`).

Confirms are awaited a window at a time (one at a time is four times slower,
DESIGN §9), and a window's envelopes that share a routing key travel as one
message; publishing is mandatory, so an unroutable message raises. The
connection is robust: aio-pika redeclares channels, queues, bindings and
consumers after a reconnect.

Publishing, declaring and parking share one connection, its channels and the
namespace, so they are one class; the messages it writes, the consumer that
settles them and the count of each queue's consumers are modules of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import (
    AMQPChannelError,
    ChannelInvalidStateError,
    PublishError,
)

from commands.contract.messages import Envelope
from infra.messaging.bus import (
    COMMANDS_EXCHANGE,
    EVENTS_EXCHANGE,
    RETRY_DELAYS_SECONDS,
    DeadLetter,
    QueueBinding,
    RunLoop,
    Subscription,
    UnroutableError,
)
from infra.messaging.rabbitmq_connection import connect_robust
from infra.messaging.rabbitmq_consumer import Consumer, put_back
from infra.messaging.rabbitmq_counts import count_consumers
from infra.messaging.rabbitmq_messages import (
    PARK_HEADERS,
    batch_message,
    copy_message,
    dead_letter,
    envelope_message,
    letter_id,
    own_headers,
    publish_confirmed,
)
from infra.messaging.rabbitmq_parking import PARKING_LOCK, TURN_SECONDS, ParkingLock, take_parked
from infra.messaging.rabbitmq_queues import QueueType, declare_typed, queue_arguments, retry_arguments
from infra.supervision import Supervisor

logger = logging.getLogger(__name__)

PUBLISH_WINDOW = 500  # confirms outstanding at once; DESIGN §9 measured windows of a few hundred
COUNTS_FRESH_SECONDS = 3.0  # readiness is probed every second or so; the broker is asked at most this often
_CONNECTION_LOST = (ConnectionError, AMQPChannelError, ChannelInvalidStateError)
_T = TypeVar("_T")


class RabbitBus:
    """A Bus on a RabbitMQ broker; see the module docstring for the topology."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "",
        retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS,
        connect_timeout: float = 10,
        reconnect_interval: float = 1,
        queues: Sequence[str] = (),
        topology: Sequence[QueueBinding] = (),
        counts_fresh_for: float = COUNTS_FRESH_SECONDS,
        queue_type: QueueType = "classic",
    ) -> None:
        """`queues`: consumer queues whose parked messages `dead_letters()` lists without subscribing.

        `topology`: the consumer queues that `declare_topology()` declares and
        `consumer_counts()` counts; their parked messages are listed too.
        """
        self._url = url
        self._namespace = namespace
        self._retry_delays = tuple(retry_delays)
        self._timeout = connect_timeout
        self._reconnect_interval = reconnect_interval
        self._topology = tuple(topology)
        self._queues = dict.fromkeys([*queues, *(binding.queue for binding in self._topology)])
        self._counts_fresh_for = counts_fresh_for
        self._queue_type = queue_type
        self._counted: tuple[float, dict[str, int]] | None = None
        self._counting = asyncio.Lock()
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractRobustChannel | None = None
        self._admin: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._consumers: list[Consumer] = []
        self._loops = Supervisor()  # for consumers subscribed without a supervisor of the process's
        self._admin_lock = asyncio.Lock()
        self._parking = ParkingLock(self.name(PARKING_LOCK), within=connect_timeout, turn=TURN_SECONDS)

    def name(self, name: str) -> str:
        """The broker's name for an exchange or queue of this namespace."""
        return f"{self._namespace}.{name}" if self._namespace else name

    async def start(self) -> None:
        self._connection = await connect_robust(
            self._url, attempt_within=self._timeout, reconnect_interval=self._reconnect_interval)
        self._publisher = await self._open_channel()
        self._admin = await self._open_channel()
        for exchange in (EVENTS_EXCHANGE, COMMANDS_EXCHANGE):
            await self._exchange(exchange)

    async def close(self) -> None:
        loops, self._loops = self._loops, Supervisor()
        await loops.stop()
        self._consumers.clear()
        if self._connection is not None:
            await self._connection.close()

    async def healthy(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def publish(self, exchange: str, envelopes: Sequence[Envelope]) -> None:
        target = await self._exchange(exchange)
        for start in range(0, len(envelopes), PUBLISH_WINDOW):
            window = envelopes[start : start + PUBLISH_WINDOW]
            try:
                await self._publish_window(target, exchange, window)
            except _CONNECTION_LOST:
                # Sent again once aio-pika has restored the channel: at least once, and
                # consumers drop duplicates. A second loss is the caller's to retry.
                logger.warning("connection lost while publishing; sending the window again", exc_info=True)
                await self._publish_window(target, exchange, window)

    async def _publish_window(
        self, target: AbstractExchange, exchange: str, window: Sequence[Envelope]
    ) -> None:
        publisher = _required(self._publisher)
        await self._ready(publisher)
        by_key: dict[str, list[Envelope]] = {}
        for envelope in window:
            by_key.setdefault(envelope.routing_key, []).append(envelope)
        groups = list(by_key.values())
        results = await publish_confirmed(publisher, target.name, [
            (envelope_message(group[0]) if len(group) == 1 else batch_message(group), group[0].routing_key)
            for group in groups
        ], within=self._timeout)
        _raise_failures(exchange, [group[0] for group in groups], results)

    async def subscribe(self, subscription: Subscription, *, run: RunLoop | None = None) -> None:
        channel = await self._open_channel()  # one per consumer, so one ack can cover a batch
        await channel.set_qos(prefetch_count=subscription.prefetch)
        queue = await self._declare_queues(channel, subscription.binding)
        consumer = Consumer(channel, subscription, queue.name, self._retry_delays, self._timeout)
        self._consumers.append(consumer)
        self._queues[subscription.queue] = None
        await queue.consume(consumer.on_message)
        (run or self._loops.start)(consumer.name, consumer.run)

    async def declare_topology(self) -> list[str]:
        channel = await self._open_channel()
        try:
            for binding in self._topology:
                await self._declare_queues(channel, binding)
        finally:
            await channel.close()
        return [binding.queue for binding in self._topology]

    async def _declare_queues(self, channel: AbstractRobustChannel, binding: QueueBinding) -> AbstractQueue:
        # A subscriber and `declare_topology` declare through here alike: the broker refuses a
        # queue declared again with other arguments (PRECONDITION_FAILED).
        exchange = await channel.declare_exchange(
            self.name(binding.exchange), aio_pika.ExchangeType.TOPIC, durable=True
        )
        name, kind = self.name(binding.queue), self._queue_type
        queue = await declare_typed(channel, name, kind, queue_arguments(kind))
        for key in binding.routing_keys:
            await queue.bind(exchange, key)
        for attempt, delay in enumerate(self._retry_delays, start=1):
            await declare_typed(channel, f"{name}.retry.{attempt}", kind, retry_arguments(kind, name, delay))
        await declare_typed(channel, f"{name}.dead", kind, queue_arguments(kind))
        return queue

    async def consumer_counts(self) -> dict[str, int] | None:
        if not self._topology or not await self.healthy():
            return None
        async with self._counting:
            now = asyncio.get_running_loop().time()
            if self._counted is None or now - self._counted[0] >= self._counts_fresh_for:
                queues = {binding.queue: self.name(binding.queue) for binding in self._topology}
                try:
                    async with asyncio.timeout(self._timeout):
                        counts = await count_consumers(_required(self._connection), queues, self._timeout)
                    self._counted = (now, counts)
                except Exception:  # a probe that cannot tell says so; the broker's outage is reported apart
                    logger.debug("counting consumers failed", exc_info=True)
                    return None
            return dict(self._counted[1])

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        async with self._admin_lock, self._parking_queues():
            for name in [queue] if queue is not None else list(self._queues):
                parked = await self._take_parked(name)
                try:
                    letters += [dead_letter(name, message) for message in parked]
                finally:
                    await asyncio.shield(put_back(parked))  # even when cancelled: no letter left held
        return letters

    async def redrive(self, dead_letter_id: str) -> bool:
        queue, separator, _ = dead_letter_id.rpartition(":")
        if not separator or not queue:
            return False
        async with self._admin_lock, self._parking_queues():
            parked = await self._take_parked(queue)
            try:
                found = next((m for m in parked if letter_id(queue, m) == dead_letter_id), None)
                if found is not None:
                    headers = {k: v for k, v in own_headers(found).items() if k not in PARK_HEADERS}
                    await _required(self._admin).default_exchange.publish(
                        copy_message(found, headers), self.name(queue), mandatory=True, timeout=self._timeout
                    )
                    await found.ack()
            finally:
                await asyncio.shield(put_back(parked))  # even when cancelled: no letter left held
        return found is not None

    def _parking_queues(self) -> AbstractAsyncContextManager[None]:
        """The lock every process takes before it reads a parking queue (`rabbitmq_parking`)."""
        return self._parking.holding(_required(self._connection))

    async def _take_parked(self, queue: str) -> list[AbstractIncomingMessage]:
        channel = _required(self._admin)
        await self._ready(channel)
        return await take_parked(channel, f"{self.name(queue)}.dead", queue_arguments(self._queue_type),
                                 within=self._timeout)

    async def _open_channel(self) -> AbstractRobustChannel:
        connection = _required(self._connection)
        channel = connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.initialize(timeout=self._timeout)
        return channel

    async def _exchange(self, exchange: str) -> AbstractExchange:
        if exchange not in self._exchanges:
            self._exchanges[exchange] = await _required(self._publisher).declare_exchange(
                self.name(exchange), aio_pika.ExchangeType.TOPIC, durable=True
            )
        return self._exchanges[exchange]

    async def _ready(self, channel: AbstractRobustChannel) -> None:
        # During a reconnect, wait for the channel to be restored rather than fail at once.
        async with asyncio.timeout(self._timeout):
            await channel.ready()


def _raise_failures(exchange: str, window: Sequence[Envelope], results: Sequence[object]) -> None:
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, PublishError):
            raise result
    unroutable = [e.routing_key for e, r in zip(window, results, strict=True) if isinstance(r, PublishError)]
    if unroutable:
        raise UnroutableError(exchange, unroutable)


def _required(value: _T | None) -> _T:
    if value is None:
        raise RuntimeError("the bus is not started")
    return value

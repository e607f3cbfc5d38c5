"""The consuming side of the RabbitMQ adapter: batches, acks, retries and parking.

A consumer hands the messages available now (up to the prefetch) to its handler at
once, then settles each by its outcome: a retry is republished to the queue's TTL
retry queue for its attempt, with the attempt count in `x-attempt`; a message that
is out of attempts, cannot be parsed, or is parked by its handler goes to
`<queue>.dead` with the error, attempts, parking time and origin in its headers.
Only then is the batch acknowledged, with one ack (DESIGN §9).

The relay sends the envelopes of a window that share a routing key as one AMQP
message (`BATCH_CONTENT_TYPE`, a JSON array of envelopes): publishing and
delivering a message costs far more than the envelope in it. Such a message is
taken apart on arrival; an envelope of it that must be retried or parked moves
on as a message of its own, so retry queues and `<queue>.dead` hold one
envelope per message, as they do for messages published one by one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError
from pamqp.common import FieldTable

from commands.contract.messages import Envelope
from infra.messaging.bus import Delivery, Outcome, Subscription, Verdict, call_handler
from infra.messaging.rabbitmq_messages import (
    ATTEMPT,
    ATTEMPTS,
    BATCH_CONTENT_TYPE,
    DEAD_LETTER_ID,
    ERROR,
    LAST_ERROR,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    PARKED_AT,
    attempt_of,
    copy_message,
    envelope_headers,
    envelope_message,
    own_headers,
    parse_message,
)

logger = logging.getLogger(__name__)

FILL_TURNS = 8
"""How many turns of the event loop a consumer gives deliveries already read from the socket to join a
batch. It never waits on a clock: an idle system hands each message on at once, and a busy one batches
what arrived while the last batch was handled."""


class Consumer:
    """Hands one queue's messages to its handler in batches, then acks, retries or parks each."""

    def __init__(self, channel: AbstractChannel, subscription: Subscription, queue: str,
                 retry_delays: tuple[float, ...], timeout: float) -> None:
        self._channel = channel
        self._subscription = subscription
        self._queue = queue
        self._retry_delays = retry_delays
        self._timeout = timeout
        self._pending: deque[AbstractIncomingMessage] = deque()
        self._arrived = asyncio.Event()

    @property
    def name(self) -> str:
        """The consuming loop's name, for its supervisor and readiness."""
        return f"consumer {self._subscription.queue}"

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self._pending.append(message)
        self._arrived.set()

    async def run(self) -> None:
        """Hand batches to the handler for ever. A batch that cannot be settled is requeued and ends the run,
        for its supervisor to start it again with backoff (the messages not yet taken stay in order)."""
        while True:
            batch = await self._next_batch()
            try:
                await self._handle([m for m in batch if is_live(m)])
            except Exception:
                # Requeued, not lost; a message left unacked would hold a prefetch slot forever.
                await put_back(batch)
                raise

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        limit = self._subscription.prefetch
        for _ in range(FILL_TURNS):
            # Deliveries read with this one reach `on_message` as tasks of their own, a turn later.
            waiting = len(self._pending)
            if waiting >= limit:
                break
            await asyncio.sleep(0)
            if len(self._pending) == waiting:
                break
        return [self._pending.popleft() for _ in range(min(limit, len(self._pending)))]

    async def _handle(self, batch: list[AbstractIncomingMessage]) -> None:
        if not batch:
            return
        parsed = [(message, parse_message(message)) for message in batch]
        deliveries = [
            Delivery(envelope, attempt_of(message))
            for message, envelopes in parsed if not isinstance(envelopes, str)
            for envelope in envelopes
        ]
        # Batch messages may carry many envelopes each: the handler takes at most a
        # prefetch's worth at a time, as it would of single messages.
        size = self._subscription.prefetch
        outcomes = iter([
            outcome
            for start in range(0, len(deliveries), size)
            for outcome in await call_handler(self._subscription.handler, deliveries[start : start + size])
        ])
        if not is_live(batch[-1]):
            return  # the channel was lost meanwhile: the broker redelivers the batch, so settle nothing
        moves: list[Awaitable[object]] = []
        for message, envelopes in parsed:
            if isinstance(envelopes, str):
                moves.append(self._park(message, f"unparseable message: {envelopes}"))
            elif message.content_type != BATCH_CONTENT_TYPE:
                moves += filter(None, [self._settle(message, next(outcomes))])
            else:
                moves += filter(None, [self._settle(message, next(outcomes), e) for e in envelopes])
        results = await asyncio.gather(*moves, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        # Every earlier delivery on this channel is settled, so one ack covers the batch (DESIGN §9).
        await ack_through(batch[-1])

    def _settle(
        self, message: AbstractIncomingMessage, outcome: Outcome, envelope: Envelope | None = None
    ) -> Awaitable[object] | None:
        """Retry or park a message by its outcome; `envelope`: the one envelope of a batch message meant."""
        attempt = attempt_of(message)
        error = outcome.error or "no error given"
        if outcome.verdict is Verdict.DONE:
            return None
        if outcome.verdict is Verdict.RETRY and attempt <= len(self._retry_delays):
            retry: FieldTable = {ATTEMPT: attempt + 1, LAST_ERROR: error[:4000]}
            return self._send(message, f"{self._queue}.retry.{attempt}", retry, envelope)
        return self._park(message, error, envelope)

    def _park(
        self, message: AbstractIncomingMessage, error: str, envelope: Envelope | None = None
    ) -> Awaitable[object]:
        park: FieldTable = {
            ERROR: error[:4000],
            ATTEMPTS: attempt_of(message),
            PARKED_AT: datetime.now(UTC).isoformat(),
            DEAD_LETTER_ID: f"{self._subscription.queue}:{uuid.uuid4().hex}",
        }
        return self._send(message, f"{self._queue}.dead", park, envelope)

    def _send(
        self, message: AbstractIncomingMessage, queue: str, extra: FieldTable, envelope: Envelope | None
    ) -> Awaitable[object]:
        headers = own_headers(message) if envelope is None else envelope_headers(envelope)
        headers.setdefault(ORIGINAL_EXCHANGE, message.exchange or "")
        headers.setdefault(ORIGINAL_ROUTING_KEY, message.routing_key or "")
        if envelope is None:
            moved = copy_message(message, headers | extra)
        else:
            moved = envelope_message(envelope, headers | extra)
        return self._channel.default_exchange.publish(moved, queue, mandatory=True, timeout=self._timeout)


async def ack_through(message: AbstractIncomingMessage) -> None:
    """Acknowledge every delivery of the message's channel up to and including it.

    The ack is queued for the connection's writer, and the next batch need not wait
    until the writer has handed it to the socket (aio-pika's `ack` waits). An ack the
    socket never carries, the connection lost first, leaves the batch unacked: the
    broker delivers it again, as after an ack lost on the way, and the handlers'
    inboxes drop what they have handled.
    """
    if message.delivery_tag is not None:
        await message.channel.basic_ack(message.delivery_tag, multiple=True, wait=False)


def is_live(message: AbstractIncomingMessage) -> bool:
    # A delivery from a channel lost in a reconnect cannot be acked; the broker redelivers it.
    try:
        return not message.channel.is_closed
    except ChannelInvalidStateError:
        return False


async def put_back(messages: Sequence[AbstractIncomingMessage]) -> None:
    """Requeue the unsettled messages, in their order, with one nack."""
    pending = [m for m in messages if not m.processed and is_live(m)]
    if pending:
        try:
            await pending[-1].nack(multiple=True, requeue=True)
        except Exception:
            logger.warning("could not requeue %d messages; the broker will", len(pending), exc_info=True)

"""The in-process adapter of the Bus port, for the embedded default (no AMQP_URL).

It keeps RabbitMQ's semantics so that code tried on it behaves the same on the
broker: topic routing with AMQP wildcards, mandatory publishing, JSON bodies
parsed on delivery, batches up to the prefetch, retries after the delays (which
reorders messages, as retry queues do), parking with the error, and redrive.

With a path its queues are a SQLite file (infra/messaging/sqlite_queue.py), so a crash or
a restart loses nothing: a publish returns once its rows are committed, and what
a consumer took and had not settled is delivered again. Without one they are in
memory, for tests, and nothing survives the process. Consumers are woken at once
by what this bus publishes, retries and re-drives, and look at the file every
`poll_interval` for what other processes (the CLI's redrive) wrote.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from commands.contract.messages import Envelope
from infra.messaging.bus import (
    RETRY_DELAYS_SECONDS,
    DeadLetter,
    Delivery,
    Outcome,
    RunLoop,
    Subscription,
    Verdict,
    call_handler,
)
from infra.messaging.sqlite_queue import Outgoing, Parked, Settlement, SqliteQueues, Stored, topic_matches
from infra.supervision import Supervisor
from projections.waiting import wait_until_set

__all__ = ["InProcessBus", "topic_matches"]

T = TypeVar("T")
log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class InProcessBus:
    """A Bus in one process, with the same retry and parking rules as RabbitMQ."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        poll_interval: float = 0.15,
    ) -> None:
        self._path = path
        self._retry_delays = tuple(retry_delays)
        self._clock = clock
        self._sleep = sleep
        self._poll_interval = poll_interval
        self._consumer = uuid.uuid4().hex  # marks the messages this bus has out with its handlers
        self._store: SqliteQueues | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._arrived: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops = Supervisor()  # for consumers subscribed without a supervisor of the process's

    async def start(self) -> None:
        if self._store is None:
            # SQLite blocks: one thread of the bus's own keeps it off the event loop, one call at a time.
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="in-process-bus")
            self._store = await self._call(partial(SqliteQueues, self._path))

    async def close(self) -> None:
        loops, self._loops = self._loops, Supervisor()
        await loops.stop()
        store, self._store = self._store, None
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if store is not None:
            # Like a broker when a channel closes: what was taken and not settled is ready again.
            await self._call(partial(store.release, self._consumer))
            await self._call(store.close)
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None

    async def healthy(self) -> bool:
        return self._store is not None

    async def declare_topology(self) -> list[str]:
        # Every consumer of this bus is in this process and declares its queue as it subscribes.
        return []

    async def consumer_counts(self) -> dict[str, int] | None:
        return None

    async def publish(self, exchange: str, envelopes: Sequence[Envelope]) -> None:
        messages = [Outgoing(e.routing_key, e.model_dump_json().encode(), e.type) for e in envelopes]
        await self._put(exchange, messages)

    async def publish_raw(self, exchange: str, routing_key: str, body: bytes, message_type: str = "") -> None:
        """Publish bytes as they are, as a foreign or broken producer would."""
        await self._put(exchange, [Outgoing(routing_key, body, message_type)])

    async def _put(self, exchange: str, messages: list[Outgoing]) -> None:
        store = self._running()
        for queue in await self._call(partial(store.publish, exchange, messages, self._clock())):
            self._arrival(queue).set()

    async def subscribe(self, subscription: Subscription, *, run: RunLoop | None = None) -> None:
        store, queue = self._running(), subscription.queue
        await self._call(partial(store.declare, queue, subscription.exchange, subscription.routing_keys,
                                 self._consumer))
        (run or self._loops.start)(f"consumer {queue}", partial(self._consume, subscription))

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        parked = await self._call(partial(self._running().dead_letters, queue))
        return [_dead_letter(letter) for letter in parked]

    async def redrive(self, dead_letter_id: str) -> bool:
        queue = await self._call(partial(self._running().redrive, dead_letter_id, self._clock()))
        if queue is not None:
            self._arrival(queue).set()
        return queue is not None

    def _running(self) -> SqliteQueues:
        if self._store is None:
            raise RuntimeError("the bus is not started")
        return self._store

    async def _call(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, work)

    def _arrival(self, queue: str) -> asyncio.Event:
        return self._arrived.setdefault(queue, asyncio.Event())

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume(self, subscription: Subscription) -> None:
        """Hand batches to the handler for ever; an error ends it, for its supervisor to start it again.

        Messages taken and not settled when it fails stay taken until the bus closes
        or restarts, and are delivered again then, as a broker does with a lost channel's.
        """
        arrived = self._arrival(subscription.queue)
        while True:
            arrived.clear()  # before looking, so a publish while we look is not missed
            batch = await self._call(partial(
                self._running().take, subscription.queue, self._consumer, subscription.prefetch,
                self._clock(),
            ))
            if batch:
                await self._handle(subscription, batch)
                continue
            await wait_until_set(arrived, self._poll_interval)

    async def _handle(self, subscription: Subscription, batch: list[Stored]) -> None:
        parsed = [(message, _parse(message.body)) for message in batch]
        deliveries = [Delivery(e, m.attempt) for m, e in parsed if isinstance(e, Envelope)]
        outcomes = iter(await call_handler(subscription.handler, deliveries))

        def outcome_of(envelope: Envelope | str) -> Outcome:
            if isinstance(envelope, Envelope):
                return next(outcomes)
            return Outcome.park(f"unparseable message: {envelope}")

        settlements = [self._settlement(message, outcome_of(envelope)) for message, envelope in parsed]
        await self._call(partial(self._running().settle, self._consumer, settlements, self._clock()))
        for settled in settlements:
            if settled.verdict is Verdict.RETRY:
                self._spawn(self._due_later(settled.message, settled.delay))

    def _settlement(self, message: Stored, outcome: Outcome) -> Settlement:
        if outcome.verdict is Verdict.DONE:
            return Settlement(message, Verdict.DONE)
        error = outcome.error or "no error given"
        if outcome.verdict is Verdict.RETRY and message.attempt <= len(self._retry_delays):
            return Settlement(message, Verdict.RETRY, error, self._retry_delays[message.attempt - 1])
        return Settlement(message, Verdict.PARK, error)

    async def _due_later(self, message: Stored, delay: float) -> None:
        # The row's due time is what a restart goes by; this timer wakes the consumer on time meanwhile.
        await self._sleep(delay)
        await self._call(partial(self._running().make_due, message.id, message.attempt + 1, self._clock()))
        self._arrival(message.queue).set()


def _parse(body: bytes) -> Envelope | str:
    try:
        return Envelope.model_validate_json(body)
    except ValidationError as error:
        return str(error)


def _dead_letter(parked: Parked) -> DeadLetter:
    envelope = _parse(parked.body)
    return DeadLetter(
        id=parked.dead_letter_id,
        queue=parked.queue,
        message_type=parked.message_type or "unknown",
        error=parked.error,
        attempts=parked.attempts,
        parked_at=parked.parked_at,
        envelope=envelope if isinstance(envelope, Envelope) else None,
        body=parked.body,
    )

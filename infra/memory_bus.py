"""The in-process adapter of the Bus port, for the embedded default (no AMQP_URL).

It keeps RabbitMQ's semantics so that code tried on it behaves the same on the
broker: topic routing with AMQP wildcards, mandatory publishing, JSON bodies
parsed on delivery, batches up to the prefetch, retries after the delays (which
reorders messages, as retry queues do), parking with the error, and redrive.
Nothing survives the process.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache

from pydantic import ValidationError

from commands.messages import Envelope
from infra.bus import (
    RETRY_DELAYS_SECONDS,
    DeadLetter,
    Delivery,
    Outcome,
    Subscription,
    UnroutableError,
    Verdict,
    call_handler,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=4096)
def topic_matches(binding_key: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more."""
    return _match(tuple(binding_key.split(".")), tuple(routing_key.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return _match(rest, words) or (bool(words) and _match(pattern, words[1:]))
    return bool(words) and head in ("*", words[0]) and _match(rest, words[1:])


@dataclass(frozen=True)
class _Message:
    body: bytes
    exchange: str
    routing_key: str
    message_type: str
    attempt: int = 1


@dataclass(eq=False)
class _Queue:
    name: str
    ready: deque[_Message] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    parked: list[tuple[DeadLetter, _Message]] = field(default_factory=list)

    def put(self, message: _Message, *, first: bool = False) -> None:
        if first:
            self.ready.appendleft(message)
        else:
            self.ready.append(message)
        self.arrived.set()

    async def take(self, limit: int) -> list[_Message]:
        while not self.ready:
            self.arrived.clear()
            await self.arrived.wait()
        await asyncio.sleep(0)  # lets a publisher that is mid-list finish, so batches fill
        return [self.ready.popleft() for _ in range(min(limit, len(self.ready)))]


class InProcessBus:
    """A Bus in one asyncio loop, with the same retry and parking rules as RabbitMQ."""

    def __init__(
        self,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._retry_delays = tuple(retry_delays)
        self._clock = clock
        self._sleep = sleep
        self._bindings: dict[str, list[tuple[str, _Queue]]] = {}
        self._queues: dict[str, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def close(self) -> None:
        self._running = False
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def healthy(self) -> bool:
        return self._running

    async def publish(self, exchange: str, envelopes: Sequence[Envelope]) -> None:
        unroutable = [
            envelope.routing_key
            for envelope in envelopes
            if not self._route(exchange, envelope.routing_key, envelope.model_dump_json().encode(),
                               envelope.type)
        ]
        if unroutable:
            raise UnroutableError(exchange, unroutable)

    async def publish_raw(self, exchange: str, routing_key: str, body: bytes, message_type: str = "") -> None:
        """Publish bytes as they are, as a foreign or broken producer would."""
        if not self._route(exchange, routing_key, body, message_type):
            raise UnroutableError(exchange, [routing_key])

    def _route(self, exchange: str, routing_key: str, body: bytes, message_type: str) -> bool:
        self._require_running()
        targets = {id(q): q for key, q in self._bindings.get(exchange, []) if topic_matches(key, routing_key)}
        for queue in targets.values():
            queue.put(_Message(body, exchange, routing_key, message_type))
        return bool(targets)

    async def subscribe(self, subscription: Subscription) -> None:
        self._require_running()
        queue = self._queues.setdefault(subscription.queue, _Queue(subscription.queue))
        bindings = self._bindings.setdefault(subscription.exchange, [])
        for key in subscription.routing_keys:
            if (key, queue) not in bindings:
                bindings.append((key, queue))
        self._spawn(self._consume(queue, subscription))

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        if queue is None:
            queues = list(self._queues.values())
        else:
            queues = [self._queues[queue]] if queue in self._queues else []
        return [letter for q in queues for letter, _ in q.parked]

    async def redrive(self, dead_letter_id: str) -> bool:
        for queue in self._queues.values():
            for index, (letter, message) in enumerate(queue.parked):
                if letter.id == dead_letter_id:
                    del queue.parked[index]
                    queue.put(replace(message, attempt=1))
                    return True
        return False

    def _require_running(self) -> None:
        if not self._running:
            raise RuntimeError("the bus is not started")

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume(self, queue: _Queue, subscription: Subscription) -> None:
        while True:
            batch = await queue.take(subscription.prefetch)
            try:
                await self._handle(queue, subscription, batch)
            except asyncio.CancelledError:
                # Like a broker when a channel closes: unacknowledged messages go back, first.
                for message in reversed(batch):
                    queue.put(message, first=True)
                raise

    async def _handle(self, queue: _Queue, subscription: Subscription, batch: list[_Message]) -> None:
        parsed = [(message, _parse(message.body)) for message in batch]
        deliveries = [Delivery(e, m.attempt) for m, e in parsed if isinstance(e, Envelope)]
        outcomes = iter(await call_handler(subscription.handler, deliveries))
        for message, envelope in parsed:
            if isinstance(envelope, Envelope):
                self._settle(queue, message, envelope, next(outcomes))
            else:
                self._park(queue, message, None, f"unparseable message: {envelope}")

    def _settle(self, queue: _Queue, message: _Message, envelope: Envelope, outcome: Outcome) -> None:
        error = outcome.error or "no error given"
        if outcome.verdict is Verdict.RETRY and message.attempt <= len(self._retry_delays):
            delay = self._retry_delays[message.attempt - 1]
            self._spawn(self._retry_later(queue, replace(message, attempt=message.attempt + 1), delay))
        elif outcome.verdict is not Verdict.DONE:
            self._park(queue, message, envelope, error)

    async def _retry_later(self, queue: _Queue, message: _Message, delay: float) -> None:
        await self._sleep(delay)
        queue.put(message)

    def _park(self, queue: _Queue, message: _Message, envelope: Envelope | None, error: str) -> None:
        letter = DeadLetter(
            id=f"{queue.name}:{uuid.uuid4().hex}",
            queue=queue.name,
            message_type=envelope.type if envelope else message.message_type or "unknown",
            error=error,
            attempts=message.attempt,
            parked_at=self._clock(),
            envelope=envelope,
            body=message.body,
        )
        queue.parked.append((letter, message))


def _parse(body: bytes) -> Envelope | str:
    try:
        return Envelope.model_validate_json(body)
    except ValidationError as error:
        return str(error)

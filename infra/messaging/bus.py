"""The message bus port: what the relay and the consumers need of a transport.

Two adapters implement it with the same semantics: RabbitMQ through aio-pika,
and an in-process bus for the embedded default. Delivery is at least once; a
handler's effects are made exactly once by the consumer's tracking rows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from commands.contract.messages import Envelope

EVENTS_EXCHANGE = "saga.events"
COMMANDS_EXCHANGE = "saga.commands"

# Attempt n waits RETRY_DELAYS[n-1] before it runs again; after the last, the message is parked.
RETRY_DELAYS_SECONDS: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)

logger = logging.getLogger(__name__)


class UnroutableError(Exception):
    """No queue is bound to receive a published message: it would have vanished."""

    def __init__(self, exchange: str, routing_keys: Sequence[str]) -> None:
        self.exchange = exchange
        self.routing_keys = tuple(routing_keys)
        super().__init__(f"no queue is bound to {exchange!r} for {', '.join(self.routing_keys)}")


class Verdict(Enum):
    DONE = "done"  # handled, or a duplicate: acknowledge
    RETRY = "retry"  # transient failure: try again later, with backoff
    PARK = "park"  # can never succeed as it is: park it with the error at once


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    error: str | None = None

    @classmethod
    def done(cls) -> Outcome:
        return cls(Verdict.DONE)

    @classmethod
    def retry(cls, error: str) -> Outcome:
        return cls(Verdict.RETRY, error)

    @classmethod
    def park(cls, error: str) -> Outcome:
        return cls(Verdict.PARK, error)


@dataclass(frozen=True)
class Delivery:
    """A message as a handler receives it, with how often it has been tried before."""

    envelope: Envelope
    attempt: int = 1


BatchHandler = Callable[[Sequence[Delivery]], Awaitable[Sequence[Outcome]]]
"""Handles the deliveries available now (up to the prefetch) and returns one outcome each, in order."""


@dataclass(frozen=True)
class QueueBinding:
    """A consumer queue and the keys it is bound with: what a broker needs to hold its messages."""

    queue: str
    exchange: str
    routing_keys: tuple[str, ...]


@dataclass(frozen=True)
class Subscription:
    queue: str
    exchange: str
    routing_keys: tuple[str, ...]
    handler: BatchHandler
    prefetch: int = 100

    @property
    def binding(self) -> QueueBinding:
        return QueueBinding(self.queue, self.exchange, self.routing_keys)


@dataclass(frozen=True)
class DeadLetter:
    id: str
    queue: str
    message_type: str
    error: str
    attempts: int
    parked_at: datetime
    envelope: Envelope | None = field(default=None, compare=False)
    body: bytes = field(default=b"", compare=False, repr=False)


RunLoop = Callable[[str, Callable[[], Coroutine[Any, Any, None]]], None]
"""Starts a named background loop, and again whenever it fails (`infra.supervision.Supervisor.start`)."""


class Bus(Protocol):
    """A transport with publisher confirms, retries with backoff and parking."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, exchange: str, envelopes: Sequence[Envelope]) -> None:
        """Publish in order; return only once the broker has confirmed every one (raise otherwise).

        Publishing is mandatory: a message no queue is bound to receive is an error.
        """
        ...

    async def subscribe(self, subscription: Subscription, *, run: RunLoop | None = None) -> None:
        """Declare the queue and its bindings and start handing batches to the handler.

        The loop that hands them ("consumer <queue>") runs under `run`, the process's
        supervisor; without one, under a supervisor of the bus's own.
        """
        ...

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetter]: ...

    async def redrive(self, dead_letter_id: str) -> bool:
        """Send a parked message back to its queue as a first attempt; False if there is no such id."""
        ...

    async def healthy(self) -> bool: ...

    async def declare_topology(self) -> list[str]:
        """Declare every consumer queue the bus was built with, as its consumer would; their names.

        A message for a role that is not running yet then waits in its queue
        instead of being unroutable. Declaring again changes nothing.
        """
        ...

    async def consumer_counts(self) -> dict[str, int] | None:
        """How many consumers each of those queues has now, 0 for one never declared.

        None when the bus cannot tell: the in-process bus, whose consumers are
        all in this process, or a broker that does not answer.
        """
        ...


async def call_handler(handler: BatchHandler, deliveries: Sequence[Delivery]) -> list[Outcome]:
    """The handler's outcomes; a retry for every delivery if it raised or miscounted.

    Both adapters call handlers through this, so a failing batch means the same on either.
    """
    if not deliveries:
        return []
    try:
        outcomes = list(await handler(deliveries))
    except Exception as error:
        logger.warning("handler failed on a batch of %d", len(deliveries), exc_info=True)
        return [Outcome.retry(f"{type(error).__name__}: {error}")] * len(deliveries)
    if len(outcomes) != len(deliveries):
        error_text = f"the handler returned {len(outcomes)} outcomes for {len(deliveries)} deliveries"
        return [Outcome.retry(error_text)] * len(deliveries)
    return outcomes

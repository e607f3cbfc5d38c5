"""Consumers: bus messages in, exactly-once effects out.

Each context consumes the commands addressed to it; the saga consumes every
integration event about an order; Orders also hears Inventory's listings, into a
catalogue of its own (its second queue). A command is recorded with its command id, and an event
with its origin (application name and notification id), in the same
transaction as the events it causes, so a redelivered message changes nothing.

A batch of deliveries is handled in one transaction when it can be; if any of
it fails, the batch is handled again one message at a time, so one bad message
costs only itself. Business refusals can never succeed by retrying and are
parked; anything else (a conflict, a database that is down) is retried.

Each delivery is handled inside its own consumer span, a child of the span its
envelope's trace context names (see `infra.observability.tracing`): one span per delivery
rather than per batch, because a batch mixes orders and so traces, and a span
per message is what shows an order's path. With no tracer provider installed
the spans are skipped entirely.

`CONSUMERS` says which role consumes which queues with which bindings: the
subscriptions are built from it, a broker's topology (`TOPOLOGY`) can be declared
from it before any consumer runs, and a message nobody consumes names the role to
start. A queue bound to every event acknowledges, and does nothing with, a fact of
the contract its consumer does not hear; a fact the contract does not know is parked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Tracking
from pydantic import ValidationError as PydanticValidationError

from commands.base import ContextApplication
from commands.command import ConcurrencyError
from commands.contract.messages import (
    CATALOGUE_EVENTS,
    FACTS,
    INTEGRATION_EVENTS,
    Envelope,
    Fact,
    IntegrationEvent,
    ProductListed,
)
from domain.base import DomainError
from infra.messaging.bus import (
    COMMANDS_EXCHANGE,
    EVENTS_EXCHANGE,
    BatchHandler,
    Delivery,
    Outcome,
    QueueBinding,
    Subscription,
)
from infra.messaging.sqlite_queue import topic_matches
from infra.observability.tracing import handling

log = logging.getLogger(__name__)

CONTEXTS = ("orders", "payments", "inventory", "shipping", "notifications")
SAGA_QUEUE = "order_fulfillment"
CATALOGUE_QUEUE = "orders_catalogue"

Parse = Callable[[Delivery], Any]
Apply = Callable[[Any], object]


class EventHandler(Protocol):
    """What the saga consumer needs of the saga application."""

    def handle_event(self, event: IntegrationEvent, tracking: Tracking | None) -> bool: ...


class ListingHandler(Protocol):
    """What the catalogue consumer needs of the Orders application."""

    def hear_listing(self, fact: ProductListed, tracking: Tracking) -> bool: ...


def command_binding(context: str) -> QueueBinding:
    """The queue named for `context`, bound to every command addressed to it."""
    return QueueBinding(context, COMMANDS_EXCHANGE, (f"{context}.*",))


def event_binding(queue: str = SAGA_QUEUE) -> QueueBinding:
    """A queue bound to every integration event."""
    return QueueBinding(queue, EVENTS_EXCHANGE, ("#",))


def catalogue_binding() -> QueueBinding:
    """Orders' second queue, bound to the facts about the catalogue."""
    return QueueBinding(CATALOGUE_QUEUE, EVENTS_EXCHANGE,
                        tuple(event.routing_key() for event in CATALOGUE_EVENTS.values()))


CONSUMERS: dict[str, tuple[QueueBinding, ...]] = {
    "orders": (command_binding("orders"), catalogue_binding()),
    **{context: (command_binding(context),) for context in CONTEXTS if context != "orders"},
    "saga": (event_binding(),),
}
"""The queues each role (`saga serve --role R`) consumes: a context its commands (Orders the
catalogue's facts too), the saga every event."""

TOPOLOGY: tuple[QueueBinding, ...] = tuple(binding for bindings in CONSUMERS.values() for binding in bindings)
"""Every consumer queue, for a broker to declare before its consumers run."""


def roles_for(exchange: str, routing_keys: Iterable[str]) -> list[str]:
    """The roles that consume messages with these keys on `exchange`, in the order of CONSUMERS."""
    keys = set(routing_keys)
    return [role for role, bindings in CONSUMERS.items() if any(
        binding.exchange == exchange and topic_matches(pattern, key)
        for binding in bindings for pattern in binding.routing_keys for key in keys)]


def idle_roles(counts: Mapping[str, int]) -> list[str]:
    """The roles with a queue that has no consumer in these counts (by queue), in the order of CONSUMERS."""
    return [role for role, bindings in CONSUMERS.items()
            if any(counts.get(binding.queue) == 0 for binding in bindings)]


def command_subscription(app: ContextApplication, context: str, *, prefetch: int = 100) -> Subscription:
    """The queue named for `context`, fed every command addressed to it."""
    by_name = {command_type.__name__: command_type for command_type in app.handlers}

    def parse(delivery: Delivery) -> Any:
        command_type = by_name.get(delivery.envelope.type)
        if command_type is None:
            return Outcome.park(f"{context} handles no {delivery.envelope.type}")
        return _validated(lambda: command_type.model_validate(delivery.envelope.payload))

    binding = command_binding(context)
    return Subscription(binding.queue, binding.exchange, binding.routing_keys,
                        batch_handler(app, parse, app.handle), prefetch)


def event_subscription(
    app: ContextApplication, handler: EventHandler, *, queue: str = SAGA_QUEUE, prefetch: int = 100
) -> Subscription:
    """Every integration event about an order, handled once each by `handler.handle_event`."""

    def apply(message: tuple[IntegrationEvent, Tracking]) -> object:
        return handler.handle_event(*message)

    binding = event_binding(queue)
    return Subscription(binding.queue, binding.exchange, binding.routing_keys,
                        batch_handler(app, fact_parser(INTEGRATION_EVENTS), apply), prefetch)


def catalogue_subscription(app: ContextApplication, handler: ListingHandler, *,
                           prefetch: int = 100) -> Subscription:
    """Inventory's listings, each kept once by `handler.hear_listing` (Orders' catalogue)."""

    def apply(message: tuple[ProductListed, Tracking]) -> object:
        return handler.hear_listing(*message)

    binding = catalogue_binding()
    return Subscription(binding.queue, binding.exchange, binding.routing_keys,
                        batch_handler(app, fact_parser(CATALOGUE_EVENTS), apply), prefetch)


def fact_parser(heard: Mapping[str, type[Fact]]) -> Parse:
    """A delivery as (fact, its tracking row) when it is a fact among `heard`.

    Another fact of the contract is acknowledged and changes nothing; one the contract
    does not know, or cannot be read, is parked.
    """

    def parse(delivery: Delivery) -> Any:
        envelope = delivery.envelope
        fact_type = heard.get(envelope.type)
        if fact_type is None:
            if envelope.type in FACTS:
                return Outcome.done()
            return Outcome.park(f"unknown integration event {envelope.type}")
        fact = _validated(lambda: fact_type.model_validate(envelope.payload))
        if isinstance(fact, Outcome):
            return fact
        return fact, Tracking(envelope.source, envelope.position)

    return parse


def batch_handler(app: ContextApplication, parse: Parse, apply: Apply) -> BatchHandler:
    # The event store's client is synchronous: a batch runs in one worker thread.
    async def handle(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        envelopes = [d.envelope for d in deliveries]
        return await asyncio.to_thread(handle_batch, app, [parse(d) for d in deliveries], apply, envelopes)

    return handle


def handle_batch(
    app: ContextApplication, parsed: list[Any], apply: Apply, envelopes: Sequence[Envelope] | None = None
) -> list[Outcome]:
    # The envelopes, in the order of `parsed`, give each message its trace span.
    paired: Sequence[Envelope | None] = envelopes or [None] * len(parsed)
    traced = list(zip(parsed, paired, strict=True))
    messages = [(m, e) for m, e in traced if not isinstance(m, Outcome)]
    if len(messages) > 1:
        try:
            with app.unit_of_work():
                app.preload(app.streams_of_orders(_order_ids([m for m, _ in messages])))
                for message, envelope in messages:
                    with handling(envelope):
                        apply(message)
        except Exception as error:
            log.debug("a batch of %d fell back to one by one: %r", len(messages), error)
        else:
            return [m if isinstance(m, Outcome) else Outcome.done() for m in parsed]
    return [m if isinstance(m, Outcome) else handle_one(apply, m, e) for m, e in traced]


def _order_ids(messages: list[Any]) -> set[UUID]:
    # A command, or an (integration event, tracking) pair; most name their order.
    found = (getattr(m[0] if isinstance(m, tuple) else m, "order_id", None) for m in messages)
    return {order_id for order_id in found if isinstance(order_id, UUID)}


def handle_one(apply: Apply, message: Any, envelope: Envelope | None = None) -> Outcome:
    try:
        with handling(envelope):
            apply(message)
    except ConcurrencyError as error:
        return Outcome.retry(str(error))
    except DomainError as error:
        log.warning("refused %s: %s", type(message).__name__, error.message)
        return Outcome.park(f"{error.code}: {error.message}")
    except Exception as error:
        log.exception("handling %s failed", type(message).__name__)
        return Outcome.retry(f"{type(error).__name__}: {error}")
    return Outcome.done()


def _validated(parse: Callable[[], Any]) -> Any:
    try:
        return parse()
    except PydanticValidationError as error:
        return Outcome.park(f"malformed payload: {error}")

"""Consumers: bus messages in, exactly-once effects out.

Each context consumes the commands addressed to it; the saga consumes every
integration event. A command is recorded with its command id, and an event
with its origin (application name and notification id), in the same
transaction as the events it causes, so a redelivered message changes nothing.
Business refusals can never succeed by retrying and are parked; anything else
(a conflict, a database that is down) is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from eventsourcing.persistence import Tracking
from pydantic import ValidationError as PydanticValidationError

from commands.base import ConcurrencyError, ContextApplication
from commands.messages import INTEGRATION_EVENTS, IntegrationEvent
from domain.base import DomainError
from infra.bus import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, Delivery, Outcome, Subscription

log = logging.getLogger(__name__)

SAGA_QUEUE = "order_fulfillment"


def command_subscription(app: ContextApplication, context: str, *, prefetch: int = 100) -> Subscription:
    """The queue named for `context`, fed every command addressed to it."""
    by_name = {command_type.__name__: command_type for command_type in app.handlers}

    def handle_one(delivery: Delivery) -> Outcome:
        command_type = by_name.get(delivery.envelope.type)
        if command_type is None:
            return Outcome.park(f"{context} handles no {delivery.envelope.type}")
        return _guarded(lambda: command_type.model_validate(delivery.envelope.payload), app.handle)

    return Subscription(
        queue=context,
        exchange=COMMANDS_EXCHANGE,
        routing_keys=(f"{context}.*",),
        handler=_in_thread(handle_one),
        prefetch=prefetch,
    )


class EventHandler(Protocol):
    """What the saga consumer needs of the saga application."""

    def handle_event(self, event: IntegrationEvent, tracking: Tracking | None) -> bool: ...


def event_subscription(
    handler: EventHandler, *, queue: str = SAGA_QUEUE, prefetch: int = 100
) -> Subscription:
    """Every integration event, handled once each by `handler.handle_event`."""

    def handle_one(delivery: Delivery) -> Outcome:
        envelope = delivery.envelope
        event_type = INTEGRATION_EVENTS.get(envelope.type)
        if event_type is None:
            return Outcome.park(f"unknown integration event {envelope.type}")
        tracking = Tracking(envelope.source, envelope.position)
        return _guarded(
            lambda: event_type.model_validate(envelope.payload),
            lambda event: handler.handle_event(event, tracking),
        )

    return Subscription(
        queue=queue,
        exchange=EVENTS_EXCHANGE,
        routing_keys=("#",),
        handler=_in_thread(handle_one),
        prefetch=prefetch,
    )


def _guarded(parse: Callable[[], Any], apply: Callable[[Any], object]) -> Outcome:
    try:
        message = parse()
    except PydanticValidationError as error:
        return Outcome.park(f"malformed payload: {error}")
    try:
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


def _in_thread(
    handle_one: Callable[[Delivery], Outcome],
) -> Callable[[Sequence[Delivery]], Any]:
    # The event store's client is synchronous: a batch runs in one worker thread.
    async def handle(deliveries: Sequence[Delivery]) -> Sequence[Outcome]:
        return await asyncio.to_thread(lambda: [handle_one(d) for d in deliveries])

    return handle


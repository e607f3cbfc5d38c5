"""The outbox relay: each application's notification log, published to the bus.

A service never publishes inside a request. The relay follows an application's
notification log from its last recorded position, turns each event into the
messages its neighbours hear, publishes a window of them with publisher
confirms, and only then records the new position, in the application's own
store. A crash between the two republishes the window: delivery is at least
once, in order per application, and consumers make effects exactly once.

Any other failure (the store, the broker, the lock) ends `run`: the runtime's
supervisor starts it again with backoff, and names it in readiness while it
stays down. The relay then reads its recorded position again, since a failed
recording may have committed; a position found already recorded when it
records one is taken as done, so a window is published once.

A message no queue is bound to receive (its role has never run, and its queue
was never declared) is not published: the relay says once which role to
start, names it in `waiting_for` for readiness, tries again quietly with
backoff, and says when it publishes again. Nothing is lost meanwhile: its
position moves only past what the broker took.

About 280 lines, as one class: following the log, publishing a window and
recording the position are one loop whose steps share the position and the
leadership.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import stamina
from eventsourcing.persistence import IntegrityError, Notification, Tracking
from eventsourcing.utils import get_topic

from commands.base import ContextApplication
from commands.contract.messages import Envelope
from commands.contract.translation import TRANSLATIONS, to_integration_event
from commands.following import have_keys_for, stored_state
from infra.messaging.bus import COMMANDS_EXCHANGE, EVENTS_EXCHANGE, Bus, UnroutableError
from infra.messaging.consumers import roles_for
from infra.messaging.leadership import Leadership, SoleLeader
from infra.observability.metrics import SagaMetrics
from infra.observability.tracing import publishing, traced_envelope
from projections.waiting import wait_until_set

log = logging.getLogger(__name__)

Outgoing = tuple[str, Envelope]
Translate = Callable[[str, Notification, Any], list[Outgoing]]

# Waiting for a role to start: the relay should notice it soon after, not half a minute later.
WAITING_CAP_SECONDS = 5.0


PUBLISHED_TOPICS = frozenset(get_topic(cls) for cls in TRANSLATIONS)
"""The stored topics of the domain events that `integration_messages` publishes; the rest stay home."""


def integration_messages(source: str, notification: Notification, event: Any) -> list[Outgoing]:
    """A context's domain event as the integration event its neighbours hear, if any."""
    fact = to_integration_event(event)
    if fact is None:
        return []
    return [(EVENTS_EXCHANGE, traced_envelope(
        message_id=f"{source}:{notification.id}",
        type=type(fact).__name__,
        kind="event",
        schema_version=fact.schema_version,
        correlation_id=event.correlation_id or getattr(fact, "order_id", None),
        causation_id=event.causation_id,
        occurred_at=event.timestamp,
        source=source,
        position=notification.id,
        routing_key=fact.routing_key(),
        payload=fact.model_dump(mode="json"),
    ))]


@dataclass(frozen=True)
class FromStoredState:
    """A translation that reads each event's stored JSON state instead of its decoded event.

    Most saga events send nothing; the ones that do carry their command whole.
    Reading the `command` field of the JSON costs a small part of validating
    every saga event into its pydantic class.
    """

    translate: Callable[[str, Notification, dict[str, Any]], list[Outgoing]]

    def __call__(self, source: str, notification: Notification, state: Any) -> list[Outgoing]:
        return self.translate(source, notification, state)


def _saga_commands(source: str, notification: Notification, state: dict[str, Any]) -> list[Outgoing]:
    command = state.get("command")
    if command is None:
        return []
    # Its trace parent is what the saga heard, not the saga event that carries it.
    return [(COMMANDS_EXCHANGE, traced_envelope(
        message_id=f"{source}:{notification.id}",
        type=command["type"],
        kind="command",
        correlation_id=state["correlation_id"],
        causation_id=f"{source}:{notification.id}",
        occurred_at=state["timestamp"],
        source=source,
        position=notification.id,
        routing_key=f"{command['context']}.{command['type']}",
        payload=command["payload"],
        cause=state.get("causation_id"),
    ))]


saga_commands = FromStoredState(_saga_commands)
"""A saga decision that asks another context to act, as the command it sends."""


class OutboxRelay:
    """Publishes one application's events, from its last confirmed position on."""

    def __init__(
        self,
        app: ContextApplication,
        bus: Bus,
        translate: Translate = integration_messages,
        *,
        window: int = 500,
        poll_interval: float = 0.5,
        leadership: Leadership | None = None,
        metrics: SagaMetrics | None = None,
        backoff: float = 0.5,
    ) -> None:
        """`backoff`: while nobody takes its messages, the first retry waits this, and each next one
        twice as long, up to WAITING_CAP_SECONDS. Other failures end `run`, for the runtime's supervisor
        to start it again."""
        self.app = app
        self.leadership = leadership or SoleLeader()
        self.bus = bus
        self.translate = translate
        self.follower = app.follower(window=window, poll_interval=poll_interval)
        self.tracking_name = f"relay:{app.name}"
        self.position: int | None = None
        self.metrics = metrics
        self.backoff = backoff
        self.waiting_for: tuple[str, ...] = ()
        """The roles nobody runs that the last window was for, while it cannot be published."""
        self._waiting: tuple[str, ...] | None = None
        self._stopping = asyncio.Event()

    async def run(self, stopping: asyncio.Event) -> None:
        """Publish until `stopping` is set, window by window as the application's log follower reads them.

        Only waiting for a role to start is retried here; any other error ends the run.
        """
        self._stopping = stopping
        try:
            await self.follower.follow(self.step, stopping)
        finally:
            # Stopped or cancelled, the lead and its session go at once: a standby takes over, and no
            # connection is left open for the collector to find.
            await self.leadership.release()

    async def step(self) -> int:
        """Publish the next window if this relay leads; how many notifications it covered.

        While nobody takes its messages the window is tried again, with backoff, for as long as it takes.
        """
        async for attempt in stamina.retry_context(
            on=UnroutableError, attempts=None, timeout=None,
            wait_initial=self.backoff, wait_jitter=self.backoff, wait_max=WAITING_CAP_SECONDS,
        ):
            with attempt:
                # Before each window, and each try of one: a leader pings the session that holds its lock.
                if not await self.leadership.acquire():
                    self.position = None  # the leader moves it on; read it again when we lead
                    await wait_until_set(self._stopping, self.follower.poll_interval * 4)
                    return 0
                try:
                    published = await self.pump()
                except UnroutableError as error:
                    self._waits(error)
                    raise
                self._published()
                return published
        raise AssertionError("unreachable: the retries above end only by returning")

    async def pump(self) -> int:
        """Publish the next window; returns how many notifications it covered."""
        try:
            return await self._pump()
        except UnroutableError:
            raise  # nothing was recorded: the position stands
        except BaseException:
            self.position = None  # a recording whose answer was lost may have committed: read it again
            raise

    async def _pump(self) -> int:
        if self.position is None:
            self.position = await asyncio.to_thread(self._recorded_position)
        notifications, outgoing = await asyncio.to_thread(self._next_window, self.position)
        if not notifications:
            return 0
        published: Counter[tuple[str, str]] = Counter()
        for exchange in (EVENTS_EXCHANGE, COMMANDS_EXCHANGE):
            envelopes = [envelope for target, envelope in outgoing if target == exchange]
            if envelopes:
                with publishing(envelopes):  # each envelope's span: the parent its consumer's span names
                    await self.bus.publish(exchange, envelopes)
                published.update((exchange, envelope.routing_key) for envelope in envelopes)
        last = notifications[-1].id
        await asyncio.to_thread(self._record, last)
        self.position = last
        if self.metrics is not None:
            # Counted once the position is recorded, so a window published again after a failure counts once.
            for (exchange, routing_key), count in published.items():
                self.metrics.published_envelopes(exchange, routing_key, count)
            self.metrics.finished_sagas(notifications)
        return len(notifications)

    def _waits(self, error: UnroutableError) -> None:
        """Say once which roles the relay waits for (the retry itself is quiet)."""
        keys = tuple(sorted(set(error.routing_keys)))
        self.waiting_for = tuple(roles_for(error.exchange, keys))
        if (self.waiting_for or keys) != self._waiting:
            self._waiting = self.waiting_for or keys
            log.warning("relay of %s waits: nobody consumes %s (no queue is bound to %s); %s",
                        self.app.name, ", ".join(keys), error.exchange, _remedy(self.waiting_for))

    def _published(self) -> None:
        if self._waiting is not None:
            log.info("relay of %s publishes again (it waited for %s)", self.app.name,
                     ", ".join(self._waiting))
        self._waiting, self.waiting_for = None, ()

    def lag(self) -> int:
        return (self.app.recorder.max_notification_id() or 0) - (self.position or 0)

    def _recorded_position(self) -> int:
        return self.app.process_recorder.max_tracking_id(self.tracking_name) or 0

    def _record(self, position: int) -> None:
        recorder = self.app.process_recorder
        try:
            recorder.insert_tracking(Tracking(self.tracking_name, position))
        except IntegrityError:
            # Recorded already: by this relay's own try whose answer was lost, or by a leader before it.
            if (recorder.max_tracking_id(self.tracking_name) or 0) < position:
                raise
            log.info("relay of %s found position %d already recorded; going on", self.app.name, position)

    def _next_window(self, position: int) -> tuple[Sequence[Notification], list[Outgoing]]:
        """The window after `position` and its messages, in one trip to a worker thread."""
        notifications = self.follower.read(position)
        return notifications, self._messages(notifications) if notifications else []

    def _messages(self, notifications: Sequence[Notification]) -> list[Outgoing]:
        have_keys_for(self.app.mapper, notifications)
        outgoing: list[Outgoing] = []
        mapper, raw = self.app.mapper, isinstance(self.translate, FromStoredState)
        by_topic = self.translate is integration_messages  # what stays home is known by topic alone
        for notification in notifications:
            if by_topic and notification.topic not in PUBLISHED_TOPICS:
                continue
            event = stored_state(mapper, notification) if raw else mapper.to_domain_event(notification)
            outgoing += self.translate(self.app.name, notification, event)
        return outgoing


def _remedy(roles: Sequence[str]) -> str:
    starts = " and ".join(f"`saga serve --role {role}`" for role in roles)
    if not starts:
        return "no role consumes them"
    return f"start {starts}, or run `saga migrate` so that they wait in a queue"

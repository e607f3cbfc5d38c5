"""The projector: follows every application's notification log into the read store.

One follower per application reads its log in batches, from the lowest
position among the projections that follow it, and hands each projection the
events past its own position (`applier`). Positions are read from the store at
every batch, never trusted from memory, so a rebuild swapped in underneath, or
another projector process, simply moves the starting point.

Each application's log is read by its own follower (`EventSource.follower`),
which wakes when the application saves in this process, when infra hears of a
save by another process (PostgreSQL's NOTIFY), and every `poll_interval` in
any case, because a NOTIFY can be lost. An error of the read
store itself (the database is down) is not an event's fault: nothing is parked,
the follower's loop ends with the error, and whoever runs the loops (`loops`, for
a supervisor) starts it again with backoff.

The projector opens no database itself: infra hands it a read store, or a
function that opens one (the projector then closes it too; `infra.readstore.opening`):

    projector = Projector(system, store=read_store_opener(settings), bus=bus)
    await projector.start()                  # opens the read store, creates its tables
    read_model = projector.read_model()      # for the API
    task = asyncio.create_task(projector.run(stopping))   # or supervise each of projector.loops(stopping)
    ...
    stopping.set(); await task; await projector.close()

A process that serves the API without projecting (`--role api` beside a
`projector` process) calls `start()` alone: its read model then sees the other
process's changes by polling.

Projector copies in several processes share the work by projection: given
`leads` (infra's advisory locks), a copy applies only the projections it leads,
asking before each batch (`leading`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from eventsourcing.persistence import Notification

from projections import tracking
from projections.applier import Applier, Item, decode_window
from projections.catalog import AnyProjection, all_projections, migrate
from projections.changes import ChangeHub
from projections.dead_letters import DeadLetterSource, replace_all
from projections.facts import EventSource, Follower
from projections.leading import DEAD_LETTERS, Leading, Leads
from projections.queries import StoreReadModel
from projections.store import ReadStore
from projections.waiting import cancel_until_done

log = logging.getLogger(__name__)

OpenStore = Callable[[], Awaitable[ReadStore]]
"""Opens a read store for the projector, which closes it when it closes."""



class Applications(Protocol):
    """The event-sourced applications to follow (`infra.bootstrap.System` fits)."""

    @property
    def applications(self) -> Sequence[EventSource]: ...


class Projector:
    """Keeps every projection up to date with the event stores, and serves the read model."""

    def __init__(
        self,
        system: Applications,
        *,
        store: ReadStore | OpenStore,
        bus: DeadLetterSource | None = None,
        projections: Sequence[AnyProjection] | None = None,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        dead_letter_interval: float = 15.0,
        leads: Leads | None = None,
    ) -> None:
        """`leads`: the lead of each projection by its name, when other copies may run; else this
        copy leads them all."""
        self.system = system
        self.bus = bus
        self.projections = tuple(projections or all_projections())
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.dead_letter_interval = dead_letter_interval
        self.hub = ChangeHub()
        self.leading = Leading([*(p.name for p in self.projections), DEAD_LETTERS], leads)
        # A store handed in belongs to the caller; one the projector opens is its to close.
        self._store: ReadStore | None = store if isinstance(store, ReadStore) else None
        self._open_store: OpenStore | None = None if isinstance(store, ReadStore) else store
        self._followers: dict[str, Follower] = {}
        self._read_model: StoreReadModel | None = None

    @property
    def store(self) -> ReadStore:
        if self._store is None:
            raise RuntimeError("the projector is not started")
        return self._store

    @property
    def applications(self) -> dict[str, EventSource]:
        """The applications some projection follows, by name."""
        followed = {name for p in self.projections for name in p.applications}
        return {app.name: app for app in self.system.applications if app.name in followed}

    async def start(self) -> None:
        """Open the read store and create its tables (idempotent)."""
        if self._store is None:
            assert self._open_store is not None
            self._store = await self._open_store()
        await migrate(self._store)
        self._read_model = StoreReadModel(self._store, heads=self.heads, hub=self.hub,
                                          poll_interval=self.poll_interval)

    def read_model(self) -> StoreReadModel:
        if self._read_model is None:
            raise RuntimeError("start the projector before asking for its read model")
        return self._read_model

    def loops(self, stopping: asyncio.Event) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        """The projector's loops by name, each to be run and started again when it fails.

        One follower per application ("projector Orders"), so that a log that cannot
        be read holds up no other, and the copier of parked messages when there is a
        bus. Start the projector first.
        """
        loops: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            f"projector {name}": functools.partial(self._follow, app, stopping)
            for name, app in self.applications.items()
        }
        if self.bus is not None:
            loops["projector dead letters"] = self._refresh_dead_letters_now_and_then
        return loops

    async def run(self, stopping: asyncio.Event) -> None:
        """Run every loop until `stopping` is set.

        If one of them fails, the others stop and `run` raises its error, for
        whoever runs it to start it again.
        """
        if self._read_model is None:
            await self.start()
        tasks = [asyncio.create_task(loop()) for loop in self.loops(stopping).values()]
        stopped = asyncio.create_task(stopping.wait())
        try:
            await _until_stopped_or_failed(stopped, tasks)
        finally:
            await cancel_until_done([*tasks, stopped])
            await self.leading.release()

    async def close(self) -> None:
        await self.leading.release()
        if self._open_store is not None and self._store is not None:
            await self._store.close()
            self._store = None
        self._read_model = None

    async def __aenter__(self) -> Projector:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def catch_up(self) -> None:
        """Apply everything recorded so far (for the CLI and tests; `run` does this continuously)."""
        for app in self.applications.values():
            while await self.pump(app):
                pass

    async def pump(self, app: EventSource) -> int:
        """Apply the next batch of one application's log to the projections this copy leads; how many
        notifications it read (0: none new, or none of them led)."""
        followers = [
            p for p in self.projections if app.name in p.applications and await self.leading.leads(p.name)
        ]
        if not followers:
            return 0
        positions = await tracking.all_positions(self.store)
        at = {p.tracking_name: positions.get((p.tracking_name, app.name), 0) for p in followers}
        start = min(at.values())
        topics = frozenset().union(*(p.topics for p in followers))
        follower = self._follower(app)
        notifications, items = await asyncio.to_thread(_read_and_decode, follower, app, start, topics)
        if not notifications:
            return 0
        last = notifications[-1].id
        applier = Applier(self.store, self.hub)
        for projection in followers:
            mine = [i for i in items if i.notification_id > at[projection.tracking_name]]
            if not await applier.apply(projection, app.name, at[projection.tracking_name], last, mine):
                log.info("%s moved on under projection %s; reading again", app.name, projection.name)
        return len(notifications)

    async def heads(self) -> Mapping[str, int]:
        """Each followed application's last notification id."""
        apps = list(self.applications.values())
        return await asyncio.to_thread(lambda: {a.name: a.recorder.max_notification_id() or 0 for a in apps})

    async def refresh_dead_letters(self) -> None:
        """Copy the bus's parked messages into the read store (call it after a re-drive)."""
        if self.bus is not None:
            await replace_all(self.store, list(await self.bus.dead_letters()))

    def _follower(self, app: EventSource) -> Follower:
        follower = self._followers.get(app.name)
        if follower is None:  # once: a loop started again keeps it, and its place among the listeners
            follower = self._followers[app.name] = app.follower(
                window=self.batch_size, poll_interval=self.poll_interval,
            )
        return follower

    async def _follow(self, app: EventSource, stopping: asyncio.Event) -> None:
        await self._follower(app).follow(functools.partial(self.pump, app), stopping)

    async def _refresh_dead_letters_now_and_then(self) -> None:
        while True:
            try:
                if await self.leading.leads(DEAD_LETTERS):
                    await self.refresh_dead_letters()
            except Exception:
                log.exception("copying the parked messages failed; trying again")
            await asyncio.sleep(self.dead_letter_interval)


def _read_and_decode(
    follower: Follower, app: EventSource, start: int, topics: frozenset[str]
) -> tuple[Sequence[Notification], list[Item]]:
    """The next window after `start` and its notifications of `topics` decoded, in one trip to a thread."""
    notifications = follower.read(start)
    return notifications, decode_window(app, notifications, topics) if notifications else []


async def _until_stopped_or_failed(stopped: asyncio.Task[bool], tasks: Sequence[asyncio.Task[None]]) -> None:
    pending: set[asyncio.Task[object]] = {stopped, *tasks}
    while not stopped.done():
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopped and (error := task.exception()) is not None:
                raise error


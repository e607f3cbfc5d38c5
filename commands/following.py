"""Following an application's notification log: from a position, in windows, woken early by a save.

Every reader of a log goes through one `LogFollower`: the outbox relay, the
projector, the saga's deadlines and the inventory's index of products. A
follower reads windows of notifications after a position its reader keeps
(in a tracking table, in the read store, in memory); `catch_up` reads every
window up to the log's last notification, and `follow` runs a reader's step
again and again, at once while it reads full windows, otherwise when the
application saves in this process, when `wake` is called (infra calls it
when PostgreSQL's NOTIFY tells of a save by another process), or every
`poll_interval` in any case, since such news can be lost.

    follower = app.follower(window=500, poll_interval=0.5)
    notifications = follower.read(after=position)
    await follower.follow(step, stopping)   # step(): read and handle the next window; how many it read

A follower retries nothing: a step that raises ends `follow`, for the
supervisor that runs the loop to start it again. Readers that need a field or
two of many events read each one's stored JSON (`stored_state`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification, StoredEvent

from commands.personal_data import keys_of


class NotificationLog(Protocol):
    """An application's recorder as a follower reads it."""

    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (),
        *, inclusive_of_start: bool = True,
    ) -> Sequence[Notification]: ...

    def max_notification_id(self) -> int | None: ...


Step = Callable[[], Awaitable[int]]
"""Reads and handles the next window from wherever its reader keeps its position; how many it read."""


class LogFollower:
    """Reads one notification log in windows, and runs a reader's steps as news of saves arrives."""

    def __init__(
        self,
        log: NotificationLog,
        *,
        window: int = 500,
        topics: Sequence[str] = (),
        poll_interval: float = 1.0,
    ) -> None:
        """`topics`: only these are read (the store filters them); every topic when empty."""
        if window < 1:
            raise ValueError("window must be at least 1")
        self.log = log
        self.window = window
        self.topics = list(topics)
        self.poll_interval = poll_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._news: asyncio.Event | None = None
        self.seen = 0
        """The last notification this follower has read: every save up to it has been read."""

    def read(self, after: int, *, stop: int | None = None) -> Sequence[Notification]:
        """The next window of notifications after position `after`, up to `stop` if given."""
        window = self.log.select_notifications(
            after, self.window, stop=stop, topics=self.topics, inclusive_of_start=False,
        )
        if window and window[-1].id > self.seen:
            self.seen = window[-1].id
        return window

    def head(self) -> int:
        """The id of the log's last notification (0 while it is empty)."""
        return self.log.max_notification_id() or 0

    def catch_up(self, after: int, take: Callable[[Sequence[Notification]], None]) -> int:
        """Hand `take` every window after `after` up to the log's last notification now; the position reached.

        With `topics`, the position reached is the log's last notification even
        when that is of another topic, so the next call starts past it. No
        notification can appear below it later: an application's writers commit
        in the order of their ids.
        """
        end = self.head()
        while after < end:
            window = self.read(after, stop=end)
            if window:
                take(window)
            after = window[-1].id if len(window) == self.window else end
        return after

    def wake(self, upto: int | None = None) -> None:
        """Run the next step now: there is news of a save. Safe to call from any thread.

        `upto`, when known, is the save's last notification: a follower that has read it
        already (news of its own process's save, heard again through the store) sleeps on.
        Notifications commit in the order of their ids, so none below it can appear later.
        """
        loop, news = self._loop, self._news
        if loop is None or news is None or news.is_set():
            return  # not following yet, or already woken: a burst of saves wakes it once
        if upto is not None and upto <= self.seen:
            return
        if _running_loop() is loop:
            news.set()
            return
        # After the loop has closed there is nobody left to wake.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(news.set)

    async def follow(self, step: Step, stopping: asyncio.Event | None = None) -> None:
        """Run `step` until `stopping` is set: at once again while it reads a full window, else on news.

        A step that raises ends `follow` with its error.
        """
        self._loop, self._news = asyncio.get_running_loop(), asyncio.Event()
        news = self._news
        while stopping is None or not stopping.is_set():
            news.clear()  # before reading, so that a save while the step reads is not missed
            covered = await step()
            if covered < self.window and not (stopping is not None and stopping.is_set()):
                await _wait(news, self.poll_interval)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a saving thread
        return None


async def _wait(event: asyncio.Event, seconds: float) -> None:
    # `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can swallow the task's own
    # cancellation when the event is set at the same moment, and the loop would never stop.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


def stored_state(mapper: Mapper[UUID], stored_event: StoredEvent) -> dict[str, Any]:
    """A stored event's state as plain JSON types (after decryption and decompression).

    For readers that need a field or two of many events (a relay, a scheduler):
    validating each into its pydantic event class costs far more than reading it.
    Personal fields are opened with their person's key, or read as erased once the
    person is forgotten, when the mapper keeps personal data (`personal`).
    """
    data = _plain(mapper, stored_event)
    state: dict[str, Any] = mapper.transcoder.decode(data)
    personal = keys_of(mapper)
    if personal is not None and personal.may_hold_sealed(data):
        state = personal.reveal(stored_event.topic, stored_event.originator_id, state)
    return state


def have_keys_for(mapper: Mapper[UUID], window: Sequence[StoredEvent]) -> None:
    """Before reading a window: the keys of every person whose sealed fields it holds, in one round trip."""
    personal = keys_of(mapper)
    if personal is None:
        return
    declared = ((event.topic, _plain(mapper, event)) for event in window if personal.declares(event.topic))
    holding = [(topic, data) for topic, data in declared if personal.may_hold_sealed(data)]
    if holding:
        personal.load_for((topic, mapper.transcoder.decode(data)) for topic, data in holding)


def _plain(mapper: Mapper[UUID], stored_event: StoredEvent) -> bytes:
    """The event's JSON bytes, the mapper's encryption and compression undone."""
    data = stored_event.state
    if mapper.cipher:
        data = mapper.cipher.decrypt(data)
    if mapper.compressor:
        data = mapper.compressor.decompress(data)
    return data

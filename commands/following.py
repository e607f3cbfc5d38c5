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

A follower of the whole log (no `topics`) is also handed the notifications its
application's saves in this process have just committed (`offer`), and reads
a window from them rather than from the store when they follow its position
without a gap: the same notifications, the same bytes, one trip to the store
fewer a save. Anything else (another process's saves, a gap an aborted save
left in the ids, a reader far behind) is read from the store as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
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


OFFERED_LIMIT = 10_000
"""The most notifications a follower keeps for its next read; past it they are read from the store."""

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
        self._offered: dict[int, Notification] = {}
        self._lock = threading.Lock()
        self._head_heard = 0  # the last notification any news has named
        self._unsure = True  # news that named no notification, or none for a while: ask the store

    def read(self, after: int, *, stop: int | None = None) -> Sequence[Notification]:
        """The next window of notifications after position `after`, up to `stop` if given."""
        window: Sequence[Notification] = self._from_offered(after, stop)
        if not window:
            self._unsure = False  # before the query: news that arrives while it runs is not lost
            window = self.log.select_notifications(
                after, self.window, stop=stop, topics=self.topics, inclusive_of_start=False,
            )
        if window and window[-1].id > self.seen:
            self.seen = window[-1].id
        return window

    def offer(self, notifications: Sequence[Notification]) -> None:
        """Notifications a save in this process has just committed, for the next read to take.

        Only a follower of the whole log keeps them: with `topics`, a gap between two
        ids may be another topic or not yet committed, and only the store can tell.
        Safe to call from any thread.
        """
        if self.topics or not notifications:
            return
        with self._lock:
            if len(self._offered) + len(notifications) > OFFERED_LIMIT:
                self._offered.clear()  # nobody is reading them: the store has them all
            for notification in notifications:
                self._offered[notification.id] = notification
            self._head_heard = max(self._head_heard, notifications[-1].id)

    def _from_offered(self, after: int, stop: int | None) -> list[Notification]:
        """The window after `after` from the offered notifications, if they hold all of it.

        They do when they follow `after` without a gap and reach the window's end,
        `stop`, or the last notification any news has named; otherwise the store
        may hold more (another process's save), and [] sends the read to it.
        """
        if not self._offered or self._unsure:
            return []
        with self._lock:
            offered = self._offered
            for read in [i for i in offered if i <= after]:
                del offered[read]  # kept until the reader stands past them: a failed window is read again
            last = after + self.window if stop is None else min(stop, after + self.window)
            window = []
            for i in range(after + 1, last + 1):
                notification = offered.get(i)
                if notification is None:
                    break
                window.append(notification)
            end = window[-1].id if window else after
            return window if end == last or end >= self._head_heard else []

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
        if upto is None:
            self._unsure = True
        else:
            with self._lock:
                self._head_heard = max(self._head_heard, upto)
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
            stopped = stopping is not None and stopping.is_set()
            if covered < self.window and not stopped and not await _wait(news, self.poll_interval):
                self._unsure = True  # no news for a while: the next read asks the store


class Followers:
    """An application's followers of its log in this process, and the news its saves give them.

    A follower that saves wake is held for as long as the application lives (the
    relays, the projector). One that they do not wake (the deadlines) is only
    handed what the saves commit, if it follows the whole log, and is held weakly:
    one its reader has dropped is let go rather than handed notifications for good.
    """

    def __init__(self) -> None:
        self._woken: list[LogFollower] = []
        self._quiet: weakref.WeakSet[LogFollower] = weakref.WeakSet()
        self._lock = threading.Lock()  # saves hand over from their own threads

    def add(self, follower: LogFollower, *, woken_by_saves: bool) -> LogFollower:
        if woken_by_saves:
            self._woken.append(follower)
        elif not follower.topics:
            with self._lock:
                self._quiet.add(follower)
        return follower

    def wake(self, upto: int | None = None) -> None:
        """News of a save, up to `upto` if known: each follower that saves wake reads on."""
        for follower in self._woken:
            follower.wake(upto)

    def saved(self, notifications: Sequence[Notification]) -> None:
        """A save in this process has committed these: hand them over, then wake who reads on news."""
        with self._lock:
            quiet = list(self._quiet)
        for follower in (*self._woken, *quiet):
            follower.offer(notifications)
        self.wake(notifications[-1].id)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # a saving thread
        return None


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` was set within `seconds`."""
    # `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can swallow the task's own
    # cancellation when the event is set at the same moment, and the loop would never stop.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


def stored_state(mapper: Mapper[UUID], stored_event: StoredEvent, *, opening: bool = True) -> dict[str, Any]:
    """A stored event's state as plain JSON types (after decryption and decompression).

    For readers that need a field or two of many events (a relay, a scheduler):
    validating each into its pydantic event class costs far more than reading it.
    Personal fields are opened with their person's key, or read as erased once the
    person is forgotten, when the mapper keeps personal data (`personal`); without
    `opening` they stay sealed as stored and no key is looked up, for a reader
    that never reads them.
    """
    data = _plain(mapper, stored_event)
    state: dict[str, Any] = mapper.transcoder.decode(data)
    personal = keys_of(mapper) if opening else None
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

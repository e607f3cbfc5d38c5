"""One follower reads every notification log: windows from a position, catching up, woken early."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Sequence
from types import SimpleNamespace
from uuid import uuid4

import pytest
from eventsourcing.persistence import Notification

from commands import following
from commands.following import LogFollower
from commands.orders import Orders, PlaceOrder
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from tests.fakes import ADDRESS, MOUSE, listed_mouse


class Log:
    """A notification log in memory, with the recorder's selection rules."""

    def __init__(self, topics: Sequence[str]) -> None:
        self.notifications = [
            Notification(id=i, originator_id=uuid4(), originator_version=1, topic=topic, state=b"{}")
            for i, topic in enumerate(topics, start=1)
        ]
        self.selects = 0

    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = (),
        *, inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        self.selects += 1
        after = (start or 0) - (1 if inclusive_of_start else 0)
        chosen = [n for n in self.notifications
                  if n.id > after and (stop is None or n.id <= stop) and (not topics or n.topic in topics)]
        return chosen[:limit]

    def max_notification_id(self) -> int | None:
        return self.notifications[-1].id if self.notifications else None

    def append(self, topic: str) -> None:
        self.notifications.append(Notification(
            id=len(self.notifications) + 1, originator_id=uuid4(), originator_version=1, topic=topic,
            state=b"{}",
        ))


def test_a_follower_reads_the_window_after_a_position() -> None:
    follower = LogFollower(Log(["a"] * 7), window=3)

    assert [n.id for n in follower.read(0)] == [1, 2, 3]
    assert [n.id for n in follower.read(5)] == [6, 7]
    assert [n.id for n in follower.read(1, stop=2)] == [2]
    assert follower.read(7) == []


def test_catching_up_reads_every_window_to_the_head_and_stands_past_what_other_topics_hold() -> None:
    log = Log(["listed", "sold", "listed", "sold", "listed", "sold", "sold"])
    follower = LogFollower(log, window=2, topics=["listed"])
    windows: list[list[int]] = []

    position = follower.catch_up(0, lambda window: windows.append([n.id for n in window]))

    assert windows == [[1, 3], [5]]
    assert position == 7  # the head, though the last listing is 5: the next call reads nothing twice
    log.append("listed")
    assert follower.catch_up(position, lambda window: windows.append([n.id for n in window])) == 8
    assert windows[-1] == [8]


def test_catching_up_an_empty_log_reads_nothing() -> None:
    log = Log([])
    follower = LogFollower(log, window=10)

    assert follower.catch_up(0, lambda window: pytest.fail("nothing to take")) == 0
    assert log.selects == 0


async def test_following_steps_again_at_once_while_windows_are_full_and_waits_for_news_otherwise() -> None:
    follower = LogFollower(Log([]), window=2, poll_interval=30)
    stopping, covered, steps = asyncio.Event(), [2, 2, 1, 0], list[float]()
    loop, third = asyncio.get_running_loop(), asyncio.Event()

    async def step() -> int:
        steps.append(loop.time())
        if len(steps) == 3:
            third.set()
        if len(steps) == len(covered):
            stopping.set()
        return covered[len(steps) - 1]

    following = asyncio.create_task(follower.follow(step, stopping))
    await asyncio.wait_for(third.wait(), 5)
    await asyncio.sleep(0.1)
    assert len(steps) == 3  # the third window was not full: it waits for news (the poll is 30 s away)

    await asyncio.to_thread(follower.wake)  # news from another thread: a save, a NOTIFY
    await asyncio.wait_for(following, 5)
    assert len(steps) == 4


async def test_news_of_a_save_already_read_does_not_wake_a_follower_and_news_of_a_later_one_does() -> None:
    log = Log(["a"] * 3)
    follower = LogFollower(log, window=10, poll_interval=30)
    stopping, stepped = asyncio.Event(), asyncio.Queue[int]()
    position = 0

    async def step() -> int:
        nonlocal position
        window = follower.read(position)
        position = window[-1].id if window else position
        stepped.put_nowait(position)
        return len(window)

    following = asyncio.create_task(follower.follow(step, stopping))
    assert await asyncio.wait_for(stepped.get(), 5) == 3 and follower.seen == 3

    follower.wake(upto=3)  # this process's own save, heard again through the store
    follower.wake(upto=2)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stepped.get(), 0.2)
    assert log.selects == 1

    log.append("a")
    follower.wake(upto=4)  # a save it has not read
    assert await asyncio.wait_for(stepped.get(), 5) == 4
    follower.wake()  # news that does not say how far: read
    assert await asyncio.wait_for(stepped.get(), 5) == 4 and log.selects == 3
    stopping.set()
    follower.wake()
    await asyncio.wait_for(following, 5)


async def test_a_step_that_raises_ends_following_with_its_error() -> None:
    follower = LogFollower(Log([]), window=2, poll_interval=0.01)

    async def step() -> int:
        raise ConnectionError("the store went away")

    with pytest.raises(ConnectionError):
        await follower.follow(step, asyncio.Event())


def saved(log: Log, follower: LogFollower, count: int, *, offered: bool = True) -> list[Notification]:
    """`count` notifications committed to `log` by a save, offered to `follower` as this process's are."""
    for _ in range(count):
        log.append("a")
    notifications = log.notifications[-count:]
    if offered:
        follower.offer(notifications)
        follower.wake(upto=notifications[-1].id)
    return notifications


def test_a_follower_reads_what_this_process_has_just_saved_without_asking_the_store() -> None:
    log = Log(["a"] * 2)
    follower = LogFollower(log, window=3)
    assert [n.id for n in follower.read(0)] == [1, 2] and log.selects == 1

    first = saved(log, follower, 2)
    second = saved(log, follower, 3)

    assert follower.read(2) == first + second[:1]  # the window's size holds
    assert follower.read(2) == first + second[:1]  # a window published again after a failure
    assert follower.read(2, stop=3) == first[:1]
    assert follower.read(5) == second[1:]
    assert log.selects == 1 and follower.seen == 7
    assert follower.read(7) == [] and log.selects == 2  # nothing offered past it: the store says


def test_what_the_offered_notifications_do_not_hold_is_read_from_the_store() -> None:
    log = Log(["a"] * 2)
    follower = LogFollower(log, window=10)
    follower.read(0)

    ours = saved(log, follower, 1)
    theirs = saved(log, follower, 1, offered=False)
    follower.wake(upto=theirs[-1].id)  # another process's save, heard through the store
    assert follower.read(2) == ours + theirs and log.selects == 2

    later = saved(log, follower, 1, offered=False)
    mine = saved(log, follower, 2)
    assert follower.read(4) == later + mine and log.selects == 3  # a gap below ours: the store

    log.append("a")  # a save whose news was lost...
    ours = saved(log, follower, 1)
    assert follower.read(7) == log.notifications[7:] and log.selects == 4  # ...shows as a gap
    follower.wake()  # news that names nothing: only the store knows
    assert follower.read(7) == log.notifications[7:] and log.selects == 5


def test_a_follower_of_some_topics_reads_every_window_from_the_store() -> None:
    log = Log(["a"] * 2)
    follower = LogFollower(log, window=10, topics=["a"])
    follower.read(0)

    new = saved(log, follower, 2)

    assert follower.read(2) == new and log.selects == 2


async def test_a_follower_that_hears_nothing_for_a_while_asks_the_store() -> None:
    log = Log(["a"] * 2)
    follower = LogFollower(log, window=10, poll_interval=0.05)
    stopping, stepped = asyncio.Event(), asyncio.Queue[list[int]]()
    position = 0

    async def step() -> int:
        nonlocal position
        window = follower.read(position)
        position = window[-1].id if window else position
        stepped.put_nowait([n.id for n in window])
        return len(window)

    following = asyncio.create_task(follower.follow(step, stopping))
    assert await asyncio.wait_for(stepped.get(), 5) == [1, 2]
    saved(log, follower, 1)
    assert await asyncio.wait_for(stepped.get(), 5) == [3] and log.selects == 1
    log.append("a")  # committed elsewhere, its news lost
    saved(log, follower, 1)  # this process's next save, offered past the gap
    while (window := await asyncio.wait_for(stepped.get(), 5)) == []:
        pass
    assert window == [4, 5]
    stopping.set()
    await asyncio.wait_for(following, 5)


def test_offered_notifications_nobody_reads_are_let_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(following, "OFFERED_LIMIT", 3)
    log = Log(["a"] * 2)
    follower = LogFollower(log, window=10)
    follower.read(0)

    saved(log, follower, 2)
    saved(log, follower, 2)  # past the limit: the store holds them all

    assert [n.id for n in follower.read(2)] == [3, 4, 5, 6] and log.selects == 2


def test_a_window_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        LogFollower(Log([]), window=0)


def test_a_follower_no_save_wakes_is_handed_the_saves_and_let_go_with_its_reader(
    memory_settings: Settings,
) -> None:
    orders = listed_mouse(Orders(application_env(memory_settings, "Orders")))
    try:
        quiet = orders.follower(window=100, woken_by_saves=False)
        assert quiet.read(0)  # the first read asks the store
        position = quiet.seen
        orders.place_order(PlaceOrder(customer_id=uuid4(), items=[{"product_id": MOUSE, "quantity": 1}],
                                      shipping_address=ADDRESS))
        store = quiet.log
        quiet.log = SimpleNamespace(select_notifications=None, max_notification_id=store.max_notification_id)
        assert [n.id for n in quiet.read(position)] == [position + 1]  # not from the store: that would raise

        dropped = weakref.ref(quiet)
        del quiet
        gc.collect()
        assert dropped() is None  # the application keeps no follower its reader has let go
    finally:
        orders.close()

"""A follower that waits for news stops when it is cancelled, even if news came at that very moment."""

from __future__ import annotations

import asyncio

import pytest

from projections.waiting import wait_until_set


async def test_a_set_event_ends_the_wait_early_and_a_quiet_one_times_out() -> None:
    event = asyncio.Event()
    assert await wait_until_set(event, 0.01) is False
    event.set()
    assert await wait_until_set(event, 10) is True


async def test_a_cancellation_that_meets_the_event_is_not_swallowed() -> None:
    for _ in range(50):
        event = asyncio.Event()
        waits = 0

        async def follow(news: asyncio.Event = event) -> None:
            nonlocal waits
            while True:  # a follower's loop: it ends only by being cancelled
                news.clear()
                waits += 1
                await wait_until_set(news, 10)

        task = asyncio.create_task(follow())
        await asyncio.sleep(0)  # the follower is now waiting
        event.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
        assert waits == 1

"""Waiting for an event, or for a while, without losing a cancellation.

On Python 3.11 `asyncio.wait_for(event.wait(), t)` can swallow the task's own
cancellation when the event is set at the moment the task is cancelled: the
loop around it then runs on, and whoever awaits the cancelled task waits for
ever (a projector, relay or bus that never stops). `asyncio.timeout` keeps a
cancellation that came from outside, so every follower waits through here.
"""

from __future__ import annotations

import asyncio


async def wait_until_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait for `event` at most `seconds`; whether it was set. A cancellation always propagates."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True

"""Waiting for an event, or for a while, without losing a cancellation.

On Python 3.11 `asyncio.wait_for(event.wait(), t)` can swallow the task's own
cancellation when the event is set at the moment the task is cancelled: the
loop around it then runs on, and whoever awaits the cancelled task waits for
ever (a projector, relay or bus that never stops). `asyncio.timeout` keeps a
cancellation that came from outside, so every follower waits through here.
The libraries' own timeouts (aio-pika's and aiormq's are `wait_for`) can
swallow one just the same, so whoever stops loops cancels each until it ends
(`cancel_until_done`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

CANCEL_AGAIN_SECONDS = 1.0


async def wait_until_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait for `event` at most `seconds`; whether it was set. A cancellation always propagates."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_until_done(tasks: Sequence[asyncio.Task[Any]]) -> list[Any]:
    """Cancel the tasks and wait for every one to end, cancelling again, each CANCEL_AGAIN_SECONDS,
    those a library's timeout let run on; their results or errors, as `asyncio.gather` returns them."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_AGAIN_SECONDS)
    return await asyncio.gather(*tasks, return_exceptions=True)

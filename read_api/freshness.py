"""Where the read model stands, read once for all the requests that wait for it together.

A kept answer may be served only if the read model has not moved since the
request arrived, so each request needs a reading of the positions that began
after it arrived. Requests that arrive while a reading is under way cannot use
it (it may have begun before they came), but they can all use the next one:
they wait together, and one reading, begun once the current one ends, answers
them all. Alone, a request reads the positions itself, with no task between;
under load, a process reads them about once per round trip instead of once
per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable

Freshness = Callable[[], Awaitable[Hashable]]
"""Reads where the read model stands (every projection's position): equal values, equal rows."""


class SharedFreshness:
    """A `Freshness` whose callers share readings, each begun after every caller it answers arrived."""

    def __init__(self, read: Freshness) -> None:
        self.read = read
        self.readings = 0
        self._reading = False
        self._next: asyncio.Future[Hashable] | None = None
        self._followers: set[asyncio.Task[None]] = set()

    async def __call__(self) -> Hashable:
        if not self._reading:
            return await self._lead()
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        # Shielded: a caller that goes away leaves the reading to the others.
        return await asyncio.shield(self._next)

    async def _lead(self) -> Hashable:
        self._reading = True
        self.readings += 1
        try:
            return await self.read()
        finally:
            self._reading = False
            waiting, self._next = self._next, None
            if waiting is not None:  # they arrived during this reading: the next one is theirs
                follower = asyncio.ensure_future(self._answer(waiting))
                self._followers.add(follower)
                follower.add_done_callback(self._followers.discard)

    async def _answer(self, waiting: asyncio.Future[Hashable]) -> None:
        try:
            at = await self._lead()
        except asyncio.CancelledError:
            waiting.cancel()
            raise
        except Exception as error:  # each waiter answers uncached, as it would have alone
            waiting.set_exception(error)
            waiting.exception()  # retrieved here too: every waiter may have gone
        else:
            waiting.set_result(at)

"""The deadline scheduler: fires the saga's deadlines in the one copy that leads.

Every saga copy keeps a `DeadlineIndex` of the deadlines still pending, read
from the saga's log; only the copy that leads (a lock infra hands in, on the
saga application's database) fires them. Firing twice would change nothing
(the saga times out only the attempt still awaited), but every copy would
read the saga, decide and fail to record, for every deadline. A standby keeps
its index caught up with the log, so when the leader dies it takes over at its
next tick with every deadline the leader had not fired, the ones already due
included; none is lost, because the index is the log's, not the leader's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from process_managers import deadlines
from process_managers.application import Sagas


class Lead(Protocol):
    async def acquire(self) -> bool:
        """True while this copy leads: it tries to become leader when it is not."""
        ...

    async def release(self) -> None: ...


class Always:
    """The only copy: it always leads."""

    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class DeadlineScheduler:
    """Fires the deadlines that have come, every `every` seconds, while this copy leads."""

    def __init__(
        self, sagas: Sagas, clock: Callable[[], datetime], *, lead: Lead | None = None, every: float = 1.0,
    ) -> None:
        self.sagas = sagas
        self.clock = clock
        self.lead = lead or Always()
        self.every = every
        self.index: deadlines.DeadlineIndex | None = None
        self.leads = False
        """Whether this copy led at its last tick (for health reports)."""

    async def run(self, stopping: asyncio.Event) -> None:
        """Tick until `stopping` is set; the lead goes when it ends, however it ends."""
        try:
            index = await self._index()
            await index.log.follow(self._step, stopping)
        finally:
            self.leads = False
            await self.lead.release()

    async def tick(self) -> int:
        """Fire what has come due if this copy leads, else only follow the log; how many it fired."""
        index = await self._index()
        self.leads = await self.lead.acquire()
        if not self.leads:
            await asyncio.to_thread(index.catch_up)
            return 0
        return await asyncio.to_thread(deadlines.fire_due, self.sagas, index, self.clock())

    async def _step(self) -> int:
        await self.tick()
        return 0  # nothing left to read at once: look again after the follower's interval

    async def _index(self) -> deadlines.DeadlineIndex:
        # Built once: a restart after a failure goes on from where the index had read, not from the start.
        if self.index is None:
            self.index = await asyncio.to_thread(deadlines.DeadlineIndex, self.sagas, every=self.every)
        return self.index

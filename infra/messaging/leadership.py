"""One leader per role at a time, however many copies of a process run.

A relay publishes in notification order and records its position; two relays of
one application would publish every window twice and interleave. Two projectors
would both apply every window of a projection, and two saga schedulers would
both fire every deadline. On PostgreSQL a session advisory lock, held on a
connection of the leader's own, elects one leader per role: if its process dies,
the server drops the session and the lock, and a standby takes over from the
recorded position. The embedded default runs in one process, where there is
nothing to elect.

A process that leads many roles of one kind (a projector, one per projection)
holds their locks on one session (`AdvisoryLocks`): one connection, not one per
role, and when it dies, every lead it held goes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Protocol

import asyncpg

from infra.settings import PostgresDsn

log = logging.getLogger(__name__)

LOST_SESSION = (
    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
    # The server ended the session while a query was on its way (pg_terminate_backend).
    asyncpg.InternalClientError,
)
"""What a lost or unreachable server raises: the lead is let go and tried for again."""


class Leadership(Protocol):
    async def acquire(self) -> bool:
        """True while this process leads: it tries to become leader when it is not."""
        ...

    async def release(self) -> None: ...


class SoleLeader:
    """A single process: always the leader."""

    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


CHECK_EVERY_SECONDS = 1.0
"""How long a session that answered counts as alive: a leader asks it again no sooner.

A relay asks for its lead before every window; asking the server each time cost
a round trip per window, on a session the leads of every relay share. A session
the server ends is seen closed at once (its socket closes); only one cut off
silently goes unseen this long, and a window published meanwhile by a leader that
has lost its lock is published twice, which consumers take once."""


class AdvisoryLocks:
    """One PostgreSQL session and the advisory locks it holds, one per role it leads."""

    def __init__(self, dsn: PostgresDsn, *, check_every: float = CHECK_EVERY_SECONDS) -> None:
        self.dsn = dsn
        self.check_every = check_every
        self._connection: asyncpg.Connection | None = None
        self._held: set[int] = set()
        self._answered_at = float("-inf")  # when the session last answered, on the loop's clock
        # One query at a time on the session: the leads of several loops share it.
        self._turn = asyncio.Lock()

    def holds(self, key: int) -> bool:
        return key in self._held

    async def hold(self, key: int, name: str) -> bool:
        """Whether the session holds the lock `key`, trying for it when it does not."""
        loop = asyncio.get_running_loop()
        connection = self._connection
        if (key in self._held and connection is not None and not connection.is_closed()
                and loop.time() - self._answered_at < self.check_every):
            return True
        async with self._turn:
            try:
                if self._connection is None or self._connection.is_closed():
                    self._held.clear()
                    self._connection = await asyncpg.connect(**self.dsn.connect_args, timeout=10)
                if key in self._held:
                    # The lock lives as long as the session: make sure the session still does.
                    await self._connection.fetchval("SELECT 1", timeout=5)
                elif await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", key, timeout=5):
                    self._held.add(key)
                    log.info("this process now leads %s", name)
                self._answered_at = loop.time()
            except LOST_SESSION as error:
                if self._held:
                    log.warning("lost the lead of %s, and of every role on its session: %s", name, error)
                await self._drop()
            except BaseException:
                # Unexpected (or a cancellation): lead nothing and hold no session, then let the
                # loop's supervisor hear of it.
                await self._drop()
                raise
            return key in self._held

    async def let_go(self, key: int) -> None:
        """Give up the lock `key`; the session closes with the last lock it held."""
        async with self._turn:
            if key in self._held and self._connection is not None and not self._connection.is_closed():
                try:
                    await self._connection.fetchval("SELECT pg_advisory_unlock($1)", key, timeout=5)
                except BaseException:
                    await self._drop()  # the session goes, and the lock with it
                    raise
            self._held.discard(key)
            if not self._held:
                await self._drop()

    async def _drop(self) -> None:
        self._held.clear()
        self._answered_at = float("-inf")
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=5)
            except Exception:
                connection.terminate()  # cut, if it cannot close politely: the server drops its locks


class AdvisoryLockLeadership:
    """Leads while it holds a PostgreSQL session advisory lock named for the role.

    On a session of its own, or on `session`, shared with the leads of other roles.
    """

    def __init__(
        self, dsn: PostgresDsn, name: str, *, session: AdvisoryLocks | None = None,
        check_every: float = CHECK_EVERY_SECONDS,
    ) -> None:
        """`check_every`: on a session of its own, how long an answer from it counts (`AdvisoryLocks`)."""
        self.dsn = dsn
        self.name = name
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self.session = session or AdvisoryLocks(dsn, check_every=check_every)

    @property
    def _leading(self) -> bool:
        return self.session.holds(self.key)

    async def acquire(self) -> bool:
        return await self.session.hold(self.key, self.name)

    async def release(self) -> None:
        with contextlib.suppress(*LOST_SESSION):  # the session is gone, and the lock with it
            await self.session.let_go(self.key)


def advisory_leads(dsn: PostgresDsn, prefix: str) -> Callable[[str], AdvisoryLockLeadership]:
    """The leads of many roles of one process (`<prefix>:<role>`), their locks on one session."""
    session = AdvisoryLocks(dsn)

    def lead(role: str) -> AdvisoryLockLeadership:
        return AdvisoryLockLeadership(dsn, f"{prefix}:{role}", session=session)

    return lead

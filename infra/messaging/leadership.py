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


class AdvisoryLocks:
    """One PostgreSQL session and the advisory locks it holds, one per role it leads."""

    def __init__(self, dsn: PostgresDsn) -> None:
        self.dsn = dsn
        self._connection: asyncpg.Connection | None = None
        self._held: set[int] = set()
        # One query at a time on the session: the leads of several loops share it.
        self._turn = asyncio.Lock()

    def holds(self, key: int) -> bool:
        return key in self._held

    async def hold(self, key: int, name: str) -> bool:
        """Whether the session holds the lock `key`, trying for it when it does not."""
        async with self._turn:
            try:
                if self._connection is None or self._connection.is_closed():
                    self._held.clear()
                    self._connection = await asyncpg.connect(
                        host=self.dsn.host, port=self.dsn.port, user=self.dsn.user,
                        password=self.dsn.password or None, database=self.dsn.dbname, timeout=10,
                    )
                if key in self._held:
                    # The lock lives as long as the session: make sure the session still does.
                    await self._connection.fetchval("SELECT 1", timeout=5)
                elif await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", key, timeout=5):
                    self._held.add(key)
                    log.info("this process now leads %s", name)
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

    def __init__(self, dsn: PostgresDsn, name: str, *, session: AdvisoryLocks | None = None) -> None:
        self.dsn = dsn
        self.name = name
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self.session = session or AdvisoryLocks(dsn)

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

"""One relay per application at a time, however many relay processes run.

A relay publishes in notification order and records its position; two relays of
one application would publish every window twice and interleave. On PostgreSQL a
session advisory lock, held on a connection of the relay's own, elects one
leader: if its process dies, the server drops the session and the lock, and a
standby takes over from the recorded position. The embedded default runs in one
process, where there is nothing to elect.
"""

from __future__ import annotations

import hashlib
import logging
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


class AdvisoryLockLeadership:
    """Leads while it holds a PostgreSQL session advisory lock named for the role."""

    def __init__(self, dsn: PostgresDsn, name: str) -> None:
        self.dsn = dsn
        self.name = name
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._connection: asyncpg.Connection | None = None
        self._leading = False

    async def acquire(self) -> bool:
        try:
            if self._connection is None or self._connection.is_closed():
                self._leading = False
                self._connection = await asyncpg.connect(
                    host=self.dsn.host, port=self.dsn.port, user=self.dsn.user,
                    password=self.dsn.password or None, database=self.dsn.dbname, timeout=10,
                )
            if self._leading:
                # The lock lives as long as the session: make sure the session still does.
                await self._connection.fetchval("SELECT 1", timeout=5)
            else:
                self._leading = bool(
                    await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", self.key)
                )
                if self._leading:
                    log.info("this process now relays %s", self.name)
        except LOST_SESSION as error:
            log.warning("lost the lead of %s: %s", self.name, error)
            await self.release()
        except BaseException:
            # Unexpected (or a cancellation): lead nothing and hold no session, then let the relay's
            # supervisor hear of it.
            await self.release()
            raise
        return self._leading

    async def release(self) -> None:
        self._leading = False
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=5)
            except Exception:
                connection.terminate()  # cut, if it cannot close politely: the server drops its lock

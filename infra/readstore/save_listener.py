"""Saves by other processes, heard through the event store's NOTIFY on PostgreSQL (asyncpg).

The projector passes the channels of the applications it follows and a callback;
this keeps a connection listening on them, and opens another when it is lost.
A NOTIFY sent while no connection listens is gone, which is why the projector
polls as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any

import asyncpg

from infra.settings import PostgresDsn

log = logging.getLogger(__name__)


async def listen_for_saves(
    where: PostgresDsn, channels: Collection[str], notified: Callable[[str], None], *,
    retry_after: float = 5.0,
) -> None:
    """Call `notified(channel)` on every NOTIFY on one of `channels`, until cancelled."""

    def heard(_: Any, __: int, channel: str, ___: object) -> None:
        notified(channel)

    while True:
        connection = None
        try:
            connection = await asyncpg.connect(
                host=where.host, port=where.port, user=where.user, password=where.password or None,
                database=where.dbname, timeout=10,
            )
            for channel in channels:
                await connection.add_listener(channel, heard)
            closed = asyncio.Event()
            connection.add_termination_listener(_setter(closed))
            await closed.wait()
        except (OSError, asyncpg.PostgresError, TimeoutError) as error:
            log.warning("listening for new events failed (%s); polling meanwhile", error)
        finally:
            if connection is not None and not connection.is_closed():
                await connection.close()
        await asyncio.sleep(retry_after)


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    return lambda _: event.set()

"""Saves by other processes, heard through the event store's NOTIFY on PostgreSQL (asyncpg).

The library sends a NOTIFY on a channel named after an application's events
table with every save. One connection per process listens on the channels of
the applications it follows and wakes their followers (`commands.following`),
so a relay or a projector in another process than the writer reads a save at
once rather than at its next poll. A NOTIFY sent while nobody listens is gone,
which is why followers poll as well. A NOTIFY reaches only the connections of
its own database, so with contexts on databases of their own
(`<CONTEXT>_DATABASE_URL`) the process listens on one connection per database.

Losing the connection, or failing to open it, ends `listen_for_saves` with an
error: the supervisor that runs it starts it again with backoff, and names it
in readiness while it stays down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Coroutine, Iterable
from typing import Any

import asyncpg

from commands.base import ContextApplication
from infra.settings import PostgresDsn, Settings

Loop = Callable[[], Coroutine[Any, Any, None]]


class ListenerLostError(ConnectionError):
    """The connection that listened for saves closed."""


def saves_elsewhere(settings: Settings, applications: Iterable[ContextApplication]) -> Loop | None:
    """The loop that wakes these applications' followers when another process saves; None on SQLite."""
    databases: dict[PostgresDsn, dict[str, ContextApplication]] = {}
    for app in applications:
        where = settings.database_of(app.name)
        if where is not None and isinstance(channel := getattr(app.recorder, "channel_name", None), str):
            databases.setdefault(where, {})[channel] = app
    if not databases:
        return None

    async def listen() -> None:
        # One connection lost ends them all with its error, and the supervisor starts them all again.
        tasks = [asyncio.create_task(listen_for_saves(where, channels, _waking(channels)))
                 for where, channels in databases.items()]
        try:
            ended, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            next(iter(ended)).result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    return listen


def _waking(channels: dict[str, ContextApplication]) -> Callable[[str, int | None], None]:
    def heard(channel: str, upto: int | None) -> None:
        channels[channel].heard_of_save(upto)

    return heard


async def listen_for_saves(
    where: PostgresDsn, channels: Collection[str], notified: Callable[[str, int | None], None]
) -> None:
    """Call `notified(channel, upto)` on each NOTIFY on `channels`, until cancelled or the connection ends.

    `upto` is the save's last notification when the NOTIFY tells it (`save_function`), else None.
    """

    def heard(_: Any, __: int, channel: str, payload: object) -> None:
        notified(channel, int(payload) if isinstance(payload, str) and payload.isdigit() else None)

    connection = await asyncpg.connect(**where.connect_args, timeout=10)
    try:
        for channel in channels:
            await connection.add_listener(channel, heard)
        closed = asyncio.Event()
        connection.add_termination_listener(lambda _: closed.set())
        await closed.wait()
        raise ListenerLostError("the connection listening for saves closed")
    finally:
        if not connection.is_closed():
            await connection.close()

"""How many consumers each queue has, asked of the broker: the probe behind `waiting_for`.

A queue that was never declared has nobody consuming it. Asking for it passively
closes the channel with NOT_FOUND, so the probe uses a plain channel of its own,
not a robust one that aio-pika would restore, and opens another for the next queue.
"""

from __future__ import annotations

from collections.abc import Mapping

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import ChannelNotFoundEntity


async def count_consumers(
    connection: AbstractRobustConnection, queues: Mapping[str, str], open_within: float
) -> dict[str, int]:
    """Each queue's consumers (`queues`: our name -> its name on the broker); 0 for one never declared."""
    counts: dict[str, int] = {}
    channel: aio_pika.Channel | None = None
    try:
        for queue, on_broker in queues.items():
            if channel is None or channel.is_closed:
                channel = aio_pika.Channel(connection, publisher_confirms=False)
                await channel.initialize(timeout=open_within)
            try:
                declared = await channel.declare_queue(on_broker, passive=True)
            except ChannelNotFoundEntity:  # never declared: nobody consumes it
                counts[queue] = 0
            else:
                counts[queue] = declared.declaration_result.consumer_count or 0
    finally:
        if channel is not None and not channel.is_closed:
            await channel.close()
    return counts

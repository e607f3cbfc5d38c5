"""A save by another process wakes this process's followers at once, through PostgreSQL's NOTIFY.

Two systems on one database stand for two processes: one places orders, the
other runs the relay and the projector with polls so slow that only the news
of the save can explain how soon they see it.
"""

from __future__ import annotations

import asyncio
import time

from infra.bootstrap import assemble, bootstrap
from infra.messaging.in_process import InProcessBus
from infra.runtime import Runtime
from infra.settings import Settings
from tests.fakes import RecordingBus
from tests.saga_harness import hear_catalogue, place

SLOW_POLL = 60.0


async def test_a_relay_and_a_projector_hear_of_another_process_s_save_long_before_they_poll(
    postgres_settings: Settings,
) -> None:
    with bootstrap(postgres_settings) as writer, bootstrap(postgres_settings) as follower:
        writer.inventory.seed()
        hear_catalogue(writer)  # as the relay and Orders' consumer would
        relaying = Runtime(assemble(follower.settings, ["relay"], system=follower, bus=RecordingBus(),
                                    seed=False))
        projecting = Runtime(assemble(follower.settings, ["projector"], system=follower, bus=InProcessBus(),
                                      seed=False))
        await relaying.start()
        await projecting.start()
        try:
            assert projecting.projector is not None
            for relay in relaying.relays:
                relay.follower.poll_interval = SLOW_POLL
            for follower_of_log in projecting.projector._followers.values():
                follower_of_log.poll_interval = SLOW_POLL  # type: ignore[attr-defined]
            # Past the polls begun before (half a second, a second): each now waits for news or the slow poll.
            await asyncio.sleep(1.5)

            started = time.monotonic()
            order_id = await asyncio.to_thread(place, writer)
            bus = relaying.bus
            assert isinstance(bus, RecordingBus)
            while "OrderPlaced" not in bus.types():
                assert time.monotonic() - started < 10, "the relay did not hear of the save"
                await asyncio.sleep(0.02)
            row = await projecting.projector.read_model().wait_for_order(order_id, 1, timeout=10)
            took = time.monotonic() - started
        finally:
            await relaying.stop()
            await projecting.stop()

    assert row is not None
    assert took < 10 < SLOW_POLL

"""A process whose roles cannot all start lets go of what it opened, so that it can end."""

from __future__ import annotations

import asyncio

import pytest

from infra.bootstrap import assemble, bootstrap
from infra.messaging.in_process import InProcessBus
from infra.runtime import Runtime
from infra.settings import Settings


class BrokerGoneWhileStarting(InProcessBus):
    """Opens its queues, then loses its broker before the roles subscribe."""

    async def start(self) -> None:
        await super().start()
        raise ConnectionError("the broker went away")


async def test_a_start_that_fails_part_way_closes_the_bus_and_leaves_nothing_running(
    memory_settings: Settings,
) -> None:
    bus = BrokerGoneWhileStarting()
    with bootstrap(memory_settings) as system:
        roles = ("api", "projector", "payments")
        runtime = Runtime(assemble(system.settings, roles, system=system, bus=bus, seed=False))
        await runtime.open_read_side()

        with pytest.raises(ConnectionError):
            async with runtime.lifespan():
                pass

        assert not await bus.healthy()
        assert runtime.stopping.is_set()
        # Nothing is left running that would keep the process from ending.
        assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []

"""The supervisor restarts a loop that fails, with backoff, and says which loops are down."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import pytest

from infra.supervision import LoopPolicy, Supervisor

QUICK = LoopPolicy(first=0.02, cap=0.08, steady=0.15, grace=0.1)


class Flaky:
    """A loop that fails while `broken` (or for its first `failures` starts), then runs until cancelled."""

    def __init__(self, failures: int = 0, *, broken: bool = False) -> None:
        self.failures = failures
        self.broken = broken
        self.starts: list[float] = []

    async def __call__(self) -> None:
        self.starts.append(time.monotonic())
        if self.broken or len(self.starts) <= self.failures:
            raise ConnectionError(f"store unreachable ({len(self.starts)})")
        await asyncio.Event().wait()


async def eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.01)


async def test_a_loop_that_raises_is_restarted_after_a_growing_backoff_and_its_restarts_are_counted() -> None:
    restarted: list[str] = []
    supervisor = Supervisor(QUICK, on_restart=restarted.append, rng=random.Random(7))
    loop = Flaky(failures=3)
    supervisor.start("relay Orders", loop)
    try:
        await eventually(lambda: len(loop.starts) == 4)
        await asyncio.sleep(0.02)
        [state] = supervisor.states()
    finally:
        await supervisor.stop()

    assert restarted == ["relay Orders"] * 3
    assert (state.running, state.restarts, state.last_error) == (True, 3, "ConnectionError")
    waits = [later - earlier for earlier, later in zip(loop.starts, loop.starts[1:], strict=False)]
    # Each wait is at least half of its doubling (the jitter takes off at most half).
    assert [wait >= QUICK.first * 2**n / 2 for n, wait in enumerate(waits)] == [True, True, True]


def test_the_backoff_doubles_up_to_its_cap_and_jitter_takes_off_at_most_half() -> None:
    policy = LoopPolicy(first=1.0, cap=8.0)
    rng = random.Random(1)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        waits = [policy.backoff(failures, rng) for _ in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1


async def test_a_loop_down_longer_than_the_grace_period_is_named_until_it_runs_well_again() -> None:
    supervisor = Supervisor(QUICK)
    loop = Flaky(broken=True)
    supervisor.start("saga deadlines", loop)
    try:
        assert supervisor.check() == {"status": "ok"}, "within the grace period"
        await eventually(lambda: supervisor.check()["status"] != "ok")
        assert supervisor.check() == {"status": "unavailable", "down": ["loop: saga deadlines"]}
        [state] = supervisor.states()
        assert state.restarting_since is not None and not state.running

        loop.broken = False
        await eventually(lambda: supervisor.check() == {"status": "ok"})
        [state] = supervisor.states()
        assert state.running and state.restarting_since is None
    finally:
        await supervisor.stop()


async def test_each_restart_is_one_warning_naming_the_loop_with_the_traceback_once_per_distinct_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="infra.supervision")

    async def same_error() -> None:
        raise ConnectionError("broker unreachable")

    supervisor = Supervisor(LoopPolicy(first=0.001, cap=0.002))
    supervisor.start("relay Payments", same_error)
    try:
        await eventually(lambda: len(caplog.records) >= 3)
    finally:
        await supervisor.stop()

    lines = [r for r in caplog.records if r.name == "infra.supervision"]
    assert all(r.levelno == logging.WARNING for r in lines)
    assert all("relay Payments" in r.getMessage() for r in lines)
    assert all("ConnectionError: broker unreachable" in r.getMessage() for r in lines)
    assert [r.exc_info is not None for r in lines[:3]] == [True, False, False]


async def test_stopping_cancels_every_loop_running_or_waiting_to_restart_and_leaves_no_task() -> None:
    supervisor = Supervisor(LoopPolicy(first=10.0, cap=10.0))
    running, waiting = Flaky(), Flaky(broken=True)
    supervisor.start("projector", running)
    supervisor.start("relay Orders", waiting)
    await eventually(lambda: len(running.starts) == 1 and len(waiting.starts) == 1)

    await asyncio.wait_for(supervisor.stop(), timeout=1)

    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert len(waiting.starts) == 1, "a cancelled loop is not restarted"


async def test_stopping_cancels_again_a_loop_that_ran_on_after_its_first_cancellation() -> None:
    supervisor = Supervisor(QUICK)
    lost: list[str] = []

    async def relay() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if lost:
                    raise
                # As aio-pika's timeouts (`asyncio.wait_for`, Python 3.11) may lose one that comes as
                # their operation completes: the loop around them runs on.
                lost.append("the first cancellation")

    supervisor.start("relay Orders", relay)
    await asyncio.sleep(0.05)

    async with asyncio.timeout(5):
        await supervisor.stop()

    assert lost == ["the first cancellation"]
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_a_loop_that_ends_of_itself_is_not_restarted() -> None:
    starts: list[int] = []

    async def once() -> None:
        starts.append(1)

    supervisor = Supervisor(QUICK)
    supervisor.start("relay Orders", once)
    await asyncio.sleep(0.1)
    await supervisor.stop()

    assert starts == [1]
    assert supervisor.check() == {"status": "ok"}

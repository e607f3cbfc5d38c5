"""Requests share readings of where the read model stands, but never one begun before they arrived."""

from __future__ import annotations

import asyncio

import pytest

from read_api.freshness import SharedFreshness

pytestmark = pytest.mark.unit


class GatedPositions:
    """Where the read model stands, taken when a reading begins; each reading ends when the test lets it."""

    def __init__(self) -> None:
        self.at = 1
        self.begun = 0
        self.failing = False
        self.gate = asyncio.Event()

    async def __call__(self) -> int:
        self.begun += 1
        at, failing = self.at, self.failing
        await self.gate.wait()
        if failing:
            raise ConnectionError("the read store is down")
        return at


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_arriving_during_a_reading_share_the_next_one_which_sees_the_move() -> None:
    positions = GatedPositions()
    shared = SharedFreshness(positions)
    first = asyncio.create_task(shared())
    await settle()
    positions.at = 2  # a projection moves while the first reading is under way
    later = [asyncio.create_task(shared()) for _ in range(3)]
    await settle()
    positions.gate.set()
    answers = await asyncio.gather(first, *later)
    assert answers == [1, 2, 2, 2]
    assert positions.begun == 2


async def test_a_request_alone_reads_the_positions_itself_each_time() -> None:
    positions = GatedPositions()
    positions.gate.set()
    shared = SharedFreshness(positions)
    assert await shared() == 1
    positions.at = 5
    assert await shared() == 5
    assert positions.begun == 2


async def test_a_failed_reading_fails_each_request_it_answers_and_the_next_reading_is_tried_anew() -> None:
    positions = GatedPositions()
    shared = SharedFreshness(positions)
    positions.failing = True
    first = asyncio.create_task(shared())
    await settle()
    waiting = [asyncio.create_task(shared()) for _ in range(2)]
    await settle()
    positions.gate.set()
    answers = await asyncio.gather(first, *waiting, return_exceptions=True)
    assert all(isinstance(answer, ConnectionError) for answer in answers)
    positions.failing = False
    assert await shared() == 1


async def test_a_request_that_goes_away_leaves_the_shared_reading_to_the_others() -> None:
    positions = GatedPositions()
    shared = SharedFreshness(positions)
    first = asyncio.create_task(shared())
    await settle()
    leaving, staying = asyncio.create_task(shared()), asyncio.create_task(shared())
    await settle()
    leaving.cancel()
    positions.gate.set()
    assert await first == 1 and await staying == 1
    assert leaving.cancelled()

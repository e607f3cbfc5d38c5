"""How `saga projections rebuild --jobs N` shares the projections out to its processes, and runs them."""

from __future__ import annotations

import gc
import multiprocessing
import queue
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import cast

import pytest

from infra.parallel_rebuild import News, _report, shared_out
from infra.runtime import collector_paused
from projections.catalog import all_projections


def test_each_projection_goes_once_to_the_share_with_the_fewest_notifications_so_far() -> None:
    projections = all_projections()
    heads = {"Orders": 300, "OrderFulfillment": 500, "Inventory": 200, "Payments": 40, "Shipping": 40,
             "Notifications": 30}

    shares = shared_out(projections, heads, jobs=2)

    assert sorted(name for share in shares for name in share) == sorted(p.name for p in projections)
    assert len(shares) == 2
    size = {p.name: sum(heads[a] for a in p.applications) for p in projections}
    sizes = [sum(size[name] for name in share) for share in shares]
    assert max(sizes) - min(sizes) <= max(heads.values())


def test_no_more_shares_than_processes_or_projections() -> None:
    projections = all_projections()

    assert shared_out(projections, {}, jobs=1) == [[p.name for p in projections]]
    assert len(shared_out(projections[:2], {}, jobs=4)) == 2


def test_a_rebuild_pauses_the_cycle_collector_and_leaves_it_as_it_found_it() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a rebuild that failed")
    assert gc.isenabled()

    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # off before, off after
    finally:
        gc.enable()


class Told:
    """The workers' queue as the parent reads it: what they said, in order, then nothing more."""

    def __init__(self, *said: tuple[str, int, int] | None) -> None:
        self._said = list(said)
        self.asked_after_the_end = 0

    def get(self, timeout: float) -> tuple[str, int, int] | None:
        if not self._said:
            self.asked_after_the_end += 1
            raise queue.Empty
        return self._said.pop(0)


def test_the_parent_passes_on_every_word_of_each_share_and_stops_at_their_last() -> None:
    futures: list[Future[list[str]]] = [Future(), Future()]
    for future in futures:
        future.set_result([])  # the results arrive before what the workers said last
    news = Told(("saga_progress", 5, 10), ("order_summary", 3, 3), None, ("saga_progress", 10, 10), None)
    heard: list[tuple[str, int, int]] = []

    _report(cast(News, news), futures, lambda *said: heard.append(said))

    assert heard == [("saga_progress", 5, 10), ("order_summary", 3, 3), ("saga_progress", 10, 10)]
    assert news.asked_after_the_end == 0  # it does not wait for a quiet queue


def test_the_parent_stops_listening_when_a_worker_died_without_a_word() -> None:
    news: News = multiprocessing.get_context("spawn").Queue()
    futures: list[Future[list[str]]] = [Future(), Future()]
    futures[0].set_result(["stock_levels"])
    futures[1].set_exception(BrokenProcessPool("a worker was killed"))
    news.put(None)

    _report(news, futures, None)  # returns: the caller raises the dead worker's error

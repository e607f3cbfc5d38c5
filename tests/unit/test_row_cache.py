"""The rows a rebuild keeps between batches: the newest ones, no more than it may."""

from __future__ import annotations

from uuid import uuid4

from projections.applier import RowCache


def test_rows_kept_are_taken_back_once_and_the_oldest_go_first() -> None:
    cache = RowCache(size=3)
    first, second, third, fourth = (uuid4() for _ in range(4))
    cache.keep({first: "a1", second: "b1", third: "c1"})

    taken = cache.take([first, uuid4()])
    cache.keep(taken | {first: "a2"})  # written again: now the newest
    cache.keep({fourth: "d1"})

    assert taken == {first: "a1"}
    assert cache.take([first, second, third, fourth]) == {first: "a2", third: "c1", fourth: "d1"}
    assert cache.take([first]) == {}

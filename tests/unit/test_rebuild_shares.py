"""How `saga projections rebuild --jobs N` shares the projections out to its processes, and runs them."""

from __future__ import annotations

import gc

import pytest

from infra.parallel_rebuild import shared_out
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

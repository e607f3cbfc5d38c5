"""Where the read model stands, as the API's kept answers read it on PostgreSQL (`saga serve`'s freshness)."""

from __future__ import annotations

import pytest

from infra.cli.serve import freshness_of
from infra.readstore.opening import open_read_store
from infra.settings import Settings
from projections import tracking
from projections.catalog import migrate
from projections.queries import StoreReadModel

pytestmark = pytest.mark.integration

LIVE, REBUILT = "kept_answers_live", "kept_answers_rebuilt"  # one projection, before and after a rebuild


async def test_a_rebuild_swapped_in_at_the_same_position_moves_where_the_read_model_stands(
    postgres_settings: Settings,
) -> None:
    store = await open_read_store(postgres_settings)
    try:
        await migrate(store)
        freshness = freshness_of(StoreReadModel(store))
        assert freshness is not None
        async with store.transaction() as tx:
            await tracking.ensure(tx, LIVE, ["Orders"])
            await tracking.advance(tx, LIVE, "Orders", 7)
            await tracking.ensure(tx, REBUILT, ["Orders"])
            await tracking.advance(tx, REBUILT, "Orders", 7)
        before, positions = await freshness(), await tracking.all_positions(store)
        async with store.transaction() as tx:  # the swap: rebuilt rows, live position unchanged
            await tracking.lock(tx, LIVE, for_update=store.dialect.for_update)
            await tracking.take_over(tx, LIVE, REBUILT)
        async with store.transaction() as tx:
            await tracking.ensure(tx, REBUILT, ["Orders"])  # the next rebuild starts as the last did
            await tracking.advance(tx, REBUILT, "Orders", 7)
        assert await tracking.all_positions(store) == positions  # the positions alone cannot tell
        assert await freshness() != before
    finally:
        await store.close()


async def test_the_embedded_store_keeps_no_answers(sqlite_settings: Settings) -> None:
    store = await open_read_store(sqlite_settings)
    try:
        assert freshness_of(StoreReadModel(store)) is None
    finally:
        await store.close()

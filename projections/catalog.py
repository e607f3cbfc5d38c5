"""Every projection, and the tables the read store needs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from projections import dead_letters, tracking
from projections.notification_log import NotificationLog
from projections.order_summary import OrderSummary
from projections.payment_status import PaymentStatus
from projections.projection import Projection
from projections.saga_progress import SagaProgress
from projections.shipment_tracking import ShipmentTracking
from projections.stock_levels import StockLevels
from projections.store import ReadStore, TableSpec, Tx

AnyProjection = Projection[Any]

log = logging.getLogger(__name__)


def all_projections() -> tuple[AnyProjection, ...]:
    return (OrderSummary(), StockLevels(), PaymentStatus(), ShipmentTracking(), NotificationLog(),
            SagaProgress())


def named(names: Iterable[str] | None) -> list[AnyProjection]:
    """The projections with these names (all of them for None); an unknown name is an error."""
    everything = {p.name: p for p in all_projections()}
    if names is None:
        return list(everything.values())
    wanted = list(names)
    unknown = [n for n in wanted if n not in everything]
    if unknown:
        raise ValueError(f"no projection {', '.join(unknown)}; choose from {', '.join(everything)}")
    return [everything[n] for n in wanted]


async def migrate(store: ReadStore) -> None:
    """Create the read tables and start every projection's positions, idempotently.

    A projection's table made by an earlier version with other columns is
    dropped and created anew, and the projection starts again from the first
    event: its rows are folded from the events, so replaying them is the
    migration, and it fills the new columns as if they had always been there.
    """
    projections = {p.table.name: p for p in all_projections()}

    async def replay_from_the_start(tx: Tx, table: TableSpec) -> None:
        projection = projections[table.name]
        log.warning("read table %s has other columns than %s needs: rebuilt from the events",
                    table.name, projection.name)
        await tracking.reset(tx, projection.tracking_name, projection.applications)

    await store.create([tracking.TRACKING, tracking.FAILURES, dead_letters.TABLE])
    await store.create([p.table for p in projections.values()], reshaped=replay_from_the_start)
    async with store.transaction() as tx:
        for projection in projections.values():
            await tracking.ensure(tx, projection.tracking_name, projection.applications)

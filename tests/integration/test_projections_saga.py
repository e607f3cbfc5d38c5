"""The read model of orders that went through the whole saga, live and rebuilt, on both stores."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from commands.orders import PlaceOrder
from infra.bootstrap import System
from infra.readstore.opening import read_store_opener
from infra.settings import Settings
from projections.queries import StoreReadModel
from projections.read_model import ReadModel
from projections.rebuild import rebuild
from projections.runner import Projector
from tests.saga_harness import ADDRESS, KEYBOARD, LAPTOP, MOUSE, finished, running

ORDER_STATUSES = ("PENDING", "PROCESSING", "COMPLETED")


@asynccontextmanager
async def projecting(system: System) -> AsyncIterator[Projector]:
    settings = system.settings
    following = Projector(system, store=read_store_opener(settings), poll_interval=0.05)
    async with following as projector:
        stopping = asyncio.Event()
        task = asyncio.create_task(projector.run(stopping))
        try:
            yield projector
        finally:
            stopping.set()
            await task


async def at_rest(model: StoreReadModel, *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while any(row.lag for row in await model.projection_status()):
        assert time.monotonic() < deadline, await model.projection_status()
        await asyncio.sleep(0.05)


def order_of(*lines: tuple[UUID, int]) -> PlaceOrder:
    items = [{"product_id": p, "quantity": q} for p, q in lines]
    return PlaceOrder(customer_id=uuid4(), items=items, shipping_address=ADDRESS)


async def statuses_until_completed(model: ReadModel, order_id: UUID) -> list[str]:
    seen = []
    async for row in model.order_changes(order_id):
        seen.append(row.status)
        if row.status == "COMPLETED":
            return seen
    return seen


async def test_completed_and_cancelled_orders_read_with_their_payment_shipment_and_saga(
    store_settings: Settings,
) -> None:
    async with running(store_settings) as system, projecting(system) as projector:
        model = projector.read_model()
        happy, short = order_of((LAPTOP, 2), (MOUSE, 1)), order_of((KEYBOARD, 31))
        served: ReadModel = model  # what the API is given
        watching = asyncio.create_task(statuses_until_completed(served, happy.order_id))
        await asyncio.to_thread(system.orders.place_order, happy)
        await asyncio.to_thread(system.orders.place_order, short)
        await finished(system, happy.order_id)
        await finished(system, short.order_id)
        await at_rest(model)

        seen = await asyncio.wait_for(watching, 10)
        assert seen[-1] == "COMPLETED" and len(seen) >= 3  # payment, shipment and saga changes show too
        assert seen == sorted(seen, key=ORDER_STATUSES.index)
        ids = [happy.order_id, short.order_id]
        orders, payments = await model.orders_by_id(ids), await model.payments_by_order(ids)
        shipments, sagas = await model.shipments_by_order(ids), await model.sagas_by_order(ids)
        completed, cancelled = orders[happy.order_id], orders[short.order_id]

        assert (completed.status, completed.total_amount, completed.version) == (
            "COMPLETED", Decimal("2649.97"), 2)
        assert [(i.product_name, i.quantity) for i in completed.items] == [
            ("Laptop Pro 15", 2), ("Wireless Mouse", 1)]
        assert (payments[happy.order_id].status, payments[happy.order_id].amount) == (
            "COMPLETED", Decimal("2649.97"))
        assert shipments[happy.order_id].status == "PREPARING"
        assert shipments[happy.order_id].tracking_number == system.shipping.get_shipment(
            happy.order_id).tracking_number
        assert sagas[happy.order_id].status == "COMPLETED"
        assert {s.status for s in sagas[happy.order_id].steps} == {"SUCCEEDED"}
        assert (await model.notifications_by_order(ids))[happy.order_id].status == "SENT"

        assert cancelled.status == "CANCELLED"
        assert "stock reservation rejected" in (cancelled.failure_reason or "")
        refund = payments[short.order_id]
        assert (refund.status, refund.refunded_amount) == ("REFUNDED", refund.amount)
        assert short.order_id not in shipments
        saga = sagas[short.order_id]
        assert (saga.status, [s.status for s in saga.steps]) == (
            "COMPENSATED", ["COMPENSATED", "FAILED", "SKIPPED", "SKIPPED"])
        assert [e.type for e in saga.timeline][-4:] == [
            "CompensationRequested", "StepCompensated", "CancellationRequested", "Compensated"]

        products = await model.products_by_id([LAPTOP, KEYBOARD])
        assert (products[LAPTOP].on_hand, products[LAPTOP].reserved) == (48, 0)
        assert (products[KEYBOARD].on_hand, products[KEYBOARD].available) == (30, 30)


async def everything(model: StoreReadModel) -> tuple[Any, ...]:
    page = await model.orders(first=100)
    ids = [row.id for row in page.rows]
    return (page, await model.payments_by_order(ids), await model.shipments_by_order(ids),
            await model.notifications_by_order(ids), await model.sagas_by_order(ids), await model.products())


async def three_orders_at_rest(system: System, model: StoreReadModel) -> tuple[Any, ...]:
    """Three orders placed and ended, the projections caught up: everything they hold."""
    placed = [order_of((MOUSE, 1)), order_of((KEYBOARD, 31)), order_of((LAPTOP, 1), (MOUSE, 2))]
    for command in placed:
        await asyncio.to_thread(system.orders.place_order, command)
    for command in placed:
        await finished(system, command.order_id)
    await at_rest(model)
    return await everything(model)


async def test_a_rebuild_from_the_event_stores_gives_the_rows_the_live_projections_built(
    store_settings: Settings,
) -> None:
    async with running(store_settings) as system, projecting(system) as projector:
        model = projector.read_model()
        live = await three_orders_at_rest(system, model)
        assert live[0].total_count == 3

        progress: list[tuple[str, int, int]] = []
        rebuilt = await rebuild(projector, progress=lambda *p: progress.append(p))

        assert rebuilt == [p.name for p in projector.projections]
        assert await everything(model) == live
        assert all(row.lag == 0 and row.failed == 0 for row in await model.projection_status())
        last = {name: (done, total) for name, done, total in progress}
        assert all(done == total for done, total in last.values())


async def test_a_rebuild_writing_two_rows_at_a_time_and_keeping_one_gives_the_rows_the_live_ones_built(
    store_settings: Settings,
) -> None:
    async with running(store_settings) as system, projecting(system) as projector:
        model = projector.read_model()
        live = await three_orders_at_rest(system, model)

        # Rows copied in new, written again once changed, let go and read back from the rebuilt table.
        await rebuild(projector, batch_size=3, pending_rows=2, cached_rows=1)

        assert await everything(model) == live
        assert all(row.lag == 0 and row.failed == 0 for row in await model.projection_status())

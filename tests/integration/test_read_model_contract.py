"""The read model the API's tests fake answers as the real one does.

The same checks run on `RowsReadModel` (tests/api_harness.py), which the API's tests
serve from, and on `StoreReadModel` over the read store on SQLite and on PostgreSQL,
each given the same rows: the real one's rows written as its projections write them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID, uuid4

import pytest

from infra.readstore.opening import open_read_store
from infra.settings import Settings
from projections.catalog import migrate
from projections.notification_log import NotificationLog
from projections.order_summary import OrderLine, OrderRecord, OrderSummary
from projections.payment_status import PaymentStatus
from projections.projection import Projection
from projections.queries import MAX_PAGE, StoreReadModel
from projections.read_model import (
    NotificationRow,
    OrderCursor,
    OrderItemRow,
    OrderRow,
    OrderView,
    PaymentRow,
    ProductRow,
    ReadModel,
    SagaRow,
    SagaStepRow,
    SagaTimelineEntry,
    ShipmentRow,
)
from projections.saga_progress import SagaProgress
from projections.shipment_tracking import ShipmentTracking
from projections.stock_levels import StockLevels
from projections.store import ReadStore
from tests.api_harness import T0, RowsReadModel, order_row

Row = OrderRow | PaymentRow | ShipmentRow | NotificationRow | SagaRow | ProductRow


class Given(Protocol):
    """A read model, and a way to give it rows as its projections would have written them."""

    model: ReadModel

    async def rows(self, *rows: Row) -> None: ...


class GivenRows:
    def __init__(self) -> None:
        self.fake = RowsReadModel()
        self.model: ReadModel = self.fake

    async def rows(self, *rows: Row) -> None:
        fake = self.fake
        for row in rows:
            match row:
                case OrderRow():
                    fake.orders_rows[row.id] = row
                case PaymentRow():
                    fake.payments[row.order_id] = row
                case ShipmentRow():
                    fake.shipments[row.order_id] = row
                case NotificationRow():
                    fake.notifications[row.order_id] = row
                case SagaRow():
                    fake.sagas[row.order_id] = row
                case ProductRow():
                    fake.product_rows[row.id] = row


class GivenStore:
    def __init__(self, store: ReadStore) -> None:
        self.store = store
        self.model: ReadModel = StoreReadModel(store)

    async def rows(self, *rows: Row) -> None:
        projections: list[tuple[type[Row], Projection[Any]]] = [
            (PaymentRow, PaymentStatus()), (ShipmentRow, ShipmentTracking()),
            (NotificationRow, NotificationLog()), (SagaRow, SagaProgress()), (ProductRow, StockLevels()),
        ]
        async with self.store.transaction() as tx:
            orders = [record_of(r) for r in rows if isinstance(r, OrderRow)]
            await OrderSummary().save(tx, {r.id: r for r in orders})
            for kind, projection in projections:
                await projection.save(tx, {r.id: r for r in rows if isinstance(r, kind)})


def record_of(row: OrderRow) -> OrderRecord:
    """The stored form of an order: PROCESSING is a PENDING order whose saga has started."""
    return OrderRecord(
        id=row.id, customer_id=row.customer_id,
        order_status="PENDING" if row.status == "PROCESSING" else row.status,
        saga_started=row.status != "PENDING", total_amount=row.total_amount, currency=row.currency,
        lines=tuple(OrderLine(i.product_id, i.quantity, i.unit_price) for i in row.items),
        shipping_address=row.shipping_address, failure_reason=row.failure_reason,
        created_at=row.created_at, updated_at=row.updated_at, version=row.version,
    )


@pytest.fixture(params=["fake", "sqlite", "postgres"])
async def given(request: pytest.FixtureRequest) -> AsyncIterator[Given]:
    if request.param == "fake":
        yield GivenRows()
        return
    settings: Settings = request.getfixturevalue(f"{request.param}_settings")
    store = await open_read_store(settings)
    try:
        await migrate(store)
        yield GivenStore(store)
    finally:
        await store.close()


def orders_at(minutes: Iterable[int], **fields: Any) -> list[OrderRow]:
    return [order_row(created_at=T0 + timedelta(minutes=m), **fields) for m in minutes]


def newest_first(rows: Iterable[OrderRow]) -> list[UUID]:
    return [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]


async def every_page(model: ReadModel, first: int, **filters: Any) -> list[list[UUID]]:
    pages, after = [], None
    while True:
        page = await model.orders(first=first, after=after, **filters)
        pages.append([r.id for r in page.rows])
        if not page.has_next_page:
            return pages
        last = page.rows[-1]
        after = OrderCursor(last.created_at, last.id)


async def test_orders_come_newest_first_page_after_page_with_ties_broken_by_id(given: Given) -> None:
    orders = orders_at([3, 1, 4, 1, 5, 9, 2])  # two placed in the same instant
    await given.rows(*orders)

    pages = await every_page(given.model, first=3)

    assert pages == [newest_first(orders)[:3], newest_first(orders)[3:6], newest_first(orders)[6:]]


async def test_a_page_counts_every_matching_order_only_when_asked(given: Given) -> None:
    await given.rows(*orders_at(range(5)))

    counted = await given.model.orders(first=2)
    uncounted = await given.model.orders(first=2, count=False)

    assert (counted.total_count, uncounted.total_count) == (5, None)
    assert [r.id for r in counted.rows] == [r.id for r in uncounted.rows]
    assert await given.model.count_orders() == 5


async def test_an_offset_skips_that_many_orders_and_one_past_the_last_finds_none(given: Given) -> None:
    orders = orders_at(range(5))
    await given.rows(*orders)

    skipped = await given.model.orders(first=2, offset=2)
    past = await given.model.orders(first=2, offset=5)

    assert [r.id for r in skipped.rows] == newest_first(orders)[2:4] and skipped.has_next_page
    assert (past.rows, past.has_next_page, past.total_count) == ((), False, 5)


async def test_a_page_holds_at_most_the_cap_however_many_are_asked_for(given: Given) -> None:
    orders = orders_at(range(MAX_PAGE + 1))
    await given.rows(*orders)

    page = await given.model.orders(first=MAX_PAGE + 100, count=False)

    assert [r.id for r in page.rows] == newest_first(orders)[:MAX_PAGE]
    assert page.has_next_page


async def test_listing_by_status_or_customer_shows_and_counts_only_those_orders(given: Given) -> None:
    customer = uuid4()
    mine = orders_at([1, 2], customer_id=customer, status="COMPLETED")
    others = [*orders_at([3], status="COMPLETED"), *orders_at([4], status="PROCESSING"),
              *orders_at([5], status="CANCELLED"), *orders_at([6], customer_id=customer)]
    await given.rows(*mine, *others)
    model = given.model

    completed = await model.orders(status="COMPLETED")
    my_completed = await model.orders(customer_id=customer, status="COMPLETED")
    processing = await model.orders(status="PROCESSING")

    assert [r.id for r in completed.rows] == newest_first([*mine, others[0]])
    assert completed.total_count == await model.count_orders(status="COMPLETED") == 3
    assert [r.id for r in my_completed.rows] == newest_first(mine)
    assert await model.count_orders(customer_id=customer) == 3
    assert [(r.id, r.status) for r in processing.rows] == [(others[1].id, "PROCESSING")]


async def test_an_order_is_read_back_as_given_and_an_unknown_id_is_left_out(given: Given) -> None:
    mouse = ProductRow(uuid4(), "Wireless Mouse", Decimal("49.99"), "USD", on_hand=10, reserved=1)
    order = order_row(status="PROCESSING")
    order = replace(order, items=(OrderItemRow(mouse.id, "Wireless Mouse", 2, Decimal("49.99")),))
    await given.rows(mouse, order)

    found = await given.model.orders_by_id([order.id, uuid4()])

    assert found == {order.id: order}
    assert await given.model.wait_for_order(order.id, order.version, timeout=1) == order
    assert await given.model.wait_for_order(order.id, order.version + 1, timeout=0.05) is None


async def test_an_orders_items_are_named_as_the_stock_levels_name_their_products_now(given: Given) -> None:
    mouse = ProductRow(uuid4(), "Wireless Mouse", Decimal("49.99"), "USD", on_hand=10, reserved=0)
    order = replace(order_row(), items=(OrderItemRow(mouse.id, "Wireless Mouse", 1, Decimal("49.99")),))
    await given.rows(mouse, order)

    await given.rows(replace(mouse, name="Silent Wireless Mouse"))

    [listed] = (await given.model.orders()).rows
    assert [i.product_name for i in listed.items] == ["Silent Wireless Mouse"]
    assert [i.product_name for i in (await given.model.orders_by_id([order.id]))[order.id].items] == [
        "Silent Wireless Mouse"]
    viewed = (await given.model.order_views([order.id]))[order.id].order
    assert viewed is not None and [i.product_name for i in viewed.items] == ["Silent Wireless Mouse"]


async def test_an_orders_payment_shipment_notification_and_saga_are_found_by_its_id(given: Given) -> None:
    order, bare = order_row(status="COMPLETED"), order_row()
    at = T0 + timedelta(minutes=1)
    payment = PaymentRow(uuid4(), order.id, "COMPLETED", order.total_amount, "USD", "txn_1", Decimal("0"),
                         T0, at, processed_at=T0)
    shipment = ShipmentRow(uuid4(), order.id, "SHIPPED", "TRK1", "UPS", T0, at)
    notification = NotificationRow(uuid4(), order.id, "SENT", "email", at)
    steps = tuple(SagaStepRow(step, "SUCCEEDED", 1)
                  for step in ("payment", "inventory", "shipping", "notification"))
    saga = SagaRow(uuid4(), order.id, "COMPLETED", None, steps, at,
                   (SagaTimelineEntry(1, "StepRequested", "payment", None, T0),))
    await given.rows(order, bare, payment, shipment, notification, saga)
    model, ids = given.model, [order.id, bare.id]

    assert await model.payments_by_order(ids) == {order.id: payment}
    assert await model.shipments_by_order(ids) == {order.id: shipment}
    assert await model.notifications_by_order(ids) == {order.id: notification}
    assert await model.sagas_by_order(ids) == {order.id: saga}
    assert await model.payments_by_order([]) == {}


async def test_an_order_is_read_with_its_newest_payment_shipment_and_saga_in_one_view(given: Given) -> None:
    order, bare, unplaced = order_row(status="COMPLETED"), order_row(), replace(order_row(), version=0)
    at, later = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)

    def payment(order_id: UUID, status: str, updated_at: Any) -> PaymentRow:
        return PaymentRow(uuid4(), order_id, status, order.total_amount, "USD", "txn_1", Decimal("0"), T0,
                          updated_at)

    declined, charged = payment(order.id, "FAILED", at), payment(order.id, "COMPLETED", later)
    shipments = [ShipmentRow(uuid4(), order.id, status, "TRK1", "UPS", T0, when)
                 for status, when in (("CANCELLED", at), ("SHIPPED", later))]
    saga = SagaRow(uuid4(), order.id, "COMPLETED", None, (SagaStepRow("payment", "SUCCEEDED", 1),), at)
    early = payment(unplaced.id, "COMPLETED", at)  # projected before the order's own Placed
    await given.rows(order, bare, unplaced, declined, *shipments, saga, early)
    await given.rows(charged)
    model = given.model

    views = await model.order_views([order.id, bare.id, unplaced.id, uuid4()])

    rows = await model.orders_by_id([order.id, bare.id])
    assert views == {order.id: OrderView(rows[order.id], charged, shipments[1], saga),
                     bare.id: OrderView(rows[bare.id], None, None, None),
                     unplaced.id: OrderView(None, early, None, None)}
    assert await model.order_views([]) == {}


async def test_stock_levels_list_every_product_by_name_with_what_is_available(given: Given) -> None:
    def product(name: str, on_hand: int, reserved: int) -> ProductRow:
        return ProductRow(uuid4(), name, Decimal("9.99"), "USD", on_hand, reserved)

    keyboard, mouse, laptop = product("Keyboard", 50, 2), product("Mouse", 10, 10), product("Laptop", 5, 1)
    await given.rows(mouse, keyboard, laptop)

    listed = await given.model.products()
    some = await given.model.products_by_id([laptop.id, uuid4()])

    assert [(p.name, p.available) for p in listed] == [("Keyboard", 48), ("Laptop", 4), ("Mouse", 0)]
    assert listed == [keyboard, laptop, mouse]
    assert some == {laptop.id: laptop}

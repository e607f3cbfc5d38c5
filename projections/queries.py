"""The ReadModel the API serves, answered from the read store.

Every query that takes many ids answers them in one round trip per table, so
the API's DataLoaders cost one query per field and request, not one per row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from projections import dead_letters as parked
from projections import tracking
from projections.catalog import all_projections
from projections.changes import ChangeHub
from projections.notification_log import NotificationLog
from projections.order_summary import OrderSummary
from projections.payment_status import PaymentStatus
from projections.projection import Projection
from projections.read_model import (
    DeadLetterRow,
    NotificationRow,
    OrderCursor,
    OrderPage,
    OrderRow,
    OrderView,
    PaymentRow,
    ProductRow,
    ProjectionStatusRow,
    SagaRow,
    ShipmentRow,
)
from projections.saga_progress import SagaProgress
from projections.shipment_tracking import ShipmentTracking
from projections.stock_levels import StockLevels, product_names, products
from projections.store import Dialect, ReadStore, Row, as_json, as_uuid, fetch_in
from projections.waiting import wait_until_set

Heads = Callable[[], Awaitable[Mapping[str, int]]]
"""Each application's last notification id, for the lag."""

R = TypeVar("R")
MAX_PAGE = 500
MAX_OFFSET = 1 << 62
"""Past any table; keeps an offset within the 64-bit integers both databases take."""


class StoreReadModel:
    """The read store's answers to the API's questions (implements `ReadModel`)."""

    def __init__(
        self, store: ReadStore, *, heads: Heads | None = None, hub: ChangeHub | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.hub = hub or ChangeHub()
        self._heads = heads
        self._poll_interval = poll_interval
        self._orders = OrderSummary()
        self._parts: tuple[tuple[str, Projection[Any]], ...] = (
            ("p", PaymentStatus()), ("s", ShipmentTracking()), ("g", SagaProgress()))
        columns = _named_order_columns(self._orders, store.dialect)
        self._by_id = (f"SELECT {columns} FROM {self._orders.table.name} o "
                       f"WHERE o.id IN ({{ids}}) AND o.version > 0")
        parts = [f"{a}.{c} AS {a}_{c}" for a, p in self._parts for c in p.table.column_names]
        joins = " ".join(f"LEFT JOIN {p.table.name} {a} ON {a}.order_id = o.id" for a, p in self._parts)
        self._views = (f"SELECT {columns}, {', '.join(parts)} FROM {self._orders.table.name} o {joins} "
                       f"WHERE o.id IN ({{ids}})")

    async def orders_by_id(self, ids: Sequence[UUID]) -> dict[UUID, OrderRow]:
        records = await fetch_in(self.store, self._by_id, ids)
        return {row.id: row for row in map(self._order_row, records)}

    async def order_views(self, ids: Sequence[UUID]) -> dict[UUID, OrderView]:
        # One row per order and payment, shipment and saga it has (one of each, as a rule);
        # of several, the newest of each kind counts, as in `_by_order`.
        found: dict[UUID, tuple[OrderRow | None, list[Any]]] = {}
        for record in await fetch_in(self.store, self._views, list(ids)):
            order_id = as_uuid(record["id"])
            if order_id not in found:
                order = self._order_row(record) if int(record["version"]) > 0 else None
                found[order_id] = (order, [None] * len(self._parts))
            parts = found[order_id][1]
            for i, (alias, projection) in enumerate(self._parts):
                if record[f"{alias}_id"] is None:
                    continue
                part = projection.decode(_Columns(record, alias))
                if parts[i] is None or part.updated_at >= parts[i].updated_at:
                    parts[i] = part
        return {order_id: OrderView(order, *parts) for order_id, (order, parts) in found.items()}

    async def orders(
        self, *, customer_id: UUID | None = None, status: str | None = None, first: int = 20,
        after: OrderCursor | None = None, count: bool = True, offset: int = 0,
    ) -> OrderPage:
        conditions, args = _order_filter(customer_id, status)
        total = await self.count_orders(customer_id=customer_id, status=status) if count else None
        if offset >= min(total if total is not None else MAX_OFFSET, MAX_OFFSET):
            return OrderPage((), False, total)  # past the last order: nothing to read
        if after is not None:
            args += [after.created_at, after.id]
            a, b = len(args) - 1, len(args)
            conditions.append(f"(created_at < ${a} OR (created_at = ${a} AND id < ${b}))")
        limit = max(0, min(first, MAX_PAGE))
        args += [limit + 1, max(0, offset)]
        # A page's products are named by one query for all of them: cheaper, for many orders, than
        # naming each order's in its row as a single order's read does.
        records = await self.store.fetch(
            f"SELECT {', '.join(self._orders.table.column_names)} FROM {self._orders.table.name} "
            f"WHERE {' AND '.join(conditions)} ORDER BY created_at DESC, id DESC "
            f"LIMIT ${len(args) - 1} OFFSET ${len(args)}",
            *args,
        )
        page = [self._orders.decode(record) for record in records]
        names = await product_names(self.store, {line.product_id for order in page for line in order.lines})
        rows = [order.to_row(names) for order in page]
        return OrderPage(tuple(rows[:limit]), len(rows) > limit, total)

    async def count_orders(self, *, customer_id: UUID | None = None, status: str | None = None) -> int:
        conditions, args = _order_filter(customer_id, status)
        counted = await self.store.fetch(
            f"SELECT COUNT(*) AS n FROM {self._orders.table.name} WHERE {' AND '.join(conditions)}", *args
        )
        return int(counted[0]["n"])

    async def payments_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, PaymentRow]:
        return await self._by_order(PaymentStatus(), order_ids)

    async def shipments_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, ShipmentRow]:
        return await self._by_order(ShipmentTracking(), order_ids)

    async def notifications_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, NotificationRow]:
        return await self._by_order(NotificationLog(), order_ids)

    async def sagas_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, SagaRow]:
        return await self._by_order(SagaProgress(), order_ids)

    async def list_sagas(
        self, *, status: str | None = None, first: int = 20, after: UUID | None = None
    ) -> list[SagaRow]:
        projection, args = SagaProgress(), list[Any]()
        conditions = ["1 = 1"]
        if status is not None:
            args.append(status)
            conditions.append(f"status = ${len(args)}")
        if after is not None:
            args.append(after)
            conditions.append(f"id > ${len(args)}")
        args.append(max(0, min(first, MAX_PAGE)))
        records = await self.store.fetch(
            f"SELECT {', '.join(projection.table.column_names)} FROM {projection.table.name} "
            f"WHERE {' AND '.join(conditions)} ORDER BY id LIMIT ${len(args)}",
            *args,
        )
        return [projection.decode(r) for r in records]

    async def products(self) -> list[ProductRow]:
        return await products(self.store)

    async def products_by_id(self, ids: Sequence[UUID]) -> dict[UUID, ProductRow]:
        return {p.id: p for p in await products(self.store, list(ids))}

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetterRow]:
        return await parked.dead_letters(self.store, queue)

    async def projection_status(self) -> list[ProjectionStatusRow]:
        """Each projection's position and lag, summed over the applications it follows.

        Without `heads` (a read model with no event store at hand) the lag is reported as 0.
        """
        positions = await tracking.all_positions(self.store)
        failed = await tracking.failure_counts(self.store)
        heads = await self._heads() if self._heads is not None else {}
        report = []
        for projection in all_projections():
            at = {app: positions.get((projection.name, app), 0) for app in projection.applications}
            lag = sum(max(0, heads.get(app, at[app]) - at[app]) for app in at)
            report.append(ProjectionStatusRow(projection.name, sum(at.values()), lag,
                                              failed.get(projection.name, 0)))
        return report

    async def projection_failures(self, name: str | None = None) -> list[tracking.ProjectionFailure]:
        """The events each projection parked because it could not apply them."""
        return await tracking.failures(self.store, name)

    async def wait_for_order(
        self, order_id: UUID, version: int, timeout: float  # noqa: ASYNC109 - a bound, not a cancel scope
    ) -> OrderRow | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self.hub.watching(order_id) as changed:
            while True:
                changed.clear()
                row = (await self.orders_by_id([order_id])).get(order_id)
                if row is not None and row.version >= version:
                    return row
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                await _wait(changed, min(remaining, 0.1))

    async def order_changes(self, order_id: UUID) -> AsyncGenerator[OrderRow, None]:
        last: OrderView | None = None
        with self.hub.watching(order_id) as changed:
            while True:
                changed.clear()
                view = await self._view(order_id)
                if view.order is not None and view != last:
                    last = view
                    yield view.order
                await _wait(changed, self._poll_interval)

    async def _view(self, order_id: UUID) -> OrderView:
        view = (await self.order_views([order_id])).get(order_id)
        if view is not None:
            return view
        ids = [order_id]
        payment, shipment, saga = await asyncio.gather(
            self.payments_by_order(ids), self.shipments_by_order(ids), self.sagas_by_order(ids))
        return OrderView(None, payment.get(order_id), shipment.get(order_id), saga.get(order_id))

    def _order_row(self, record: Row) -> OrderRow:
        """An order read with its `product_names` (`_by_id`, `_views`), its items named."""
        names = as_json(record["product_names"]) or {}
        return self._orders.decode(record).to_row({UUID(key): name for key, name in names.items()})

    async def _by_order(self, projection: Projection[Any], order_ids: Sequence[UUID]) -> dict[UUID, Any]:
        """The newest row of each order (one payment, shipment, saga per order; the latest notification)."""
        newest: dict[UUID, Any] = {}
        for row in await self._select(projection, "order_id IN ({ids})", list(order_ids)):
            if row.order_id not in newest or row.updated_at >= newest[row.order_id].updated_at:
                newest[row.order_id] = row
        return newest

    async def _select(self, projection: Projection[R], where: str, ids: list[UUID]) -> list[R]:
        if not ids:
            return []
        columns = ", ".join(projection.table.column_names)
        records: list[Row] = await fetch_in(
            self.store, f"SELECT {columns} FROM {projection.table.name} WHERE {where}", ids
        )
        return [projection.decode(r) for r in records]


class _Columns(Mapping[str, Any]):
    """One table's columns of a joined row, by their own names (`alias_column` in the row)."""

    __slots__ = ("_prefix", "_record")

    def __init__(self, record: Row, alias: str) -> None:
        self._record = record
        self._prefix = f"{alias}_"

    def __getitem__(self, column: str) -> Any:
        return self._record[self._prefix + column]

    def __iter__(self) -> Iterator[str]:
        n = len(self._prefix)
        keys = self._record.keys()  # an asyncpg Record iterates its values, not its keys
        return (key[n:] for key in keys if key.startswith(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _named_order_columns(orders: OrderSummary, dialect: Dialect) -> str:
    """Every column of orders (`o`), and `product_names`: the names of the products in each order's
    items, as the stock levels name them now (a JSON object by product id)."""
    products = dialect.json_uuids.format(member="product_id", array="o.items")
    names = dialect.json_object.format(key="n.id", value="n.name")
    columns = ", ".join(f"o.{c}" for c in orders.table.column_names)
    return (f"{columns}, (SELECT {names} FROM {StockLevels().table.name} n WHERE n.id IN ({products})) "
            "AS product_names")


async def _wait(event: asyncio.Event, seconds: float) -> None:
    await wait_until_set(event, seconds)


def _order_filter(customer_id: UUID | None, status: str | None) -> tuple[list[str], list[Any]]:
    """The WHERE conditions (and their arguments) of the orders a listing shows."""
    conditions, args = ["version > 0"], list[Any]()
    if customer_id is not None:
        args.append(customer_id)
        conditions.append(f"customer_id = ${len(args)}")
    if status is not None:
        args.append(status)
        conditions.append(f"status = ${len(args)}")
    return conditions, args

"""Each order as its customer sees it, and each customer's orders, newest first.

An order is PENDING when placed, PROCESSING once its saga has started, then
COMPLETED or CANCELLED as the Orders context records. The saga's `Started` and
the order's own events live in two logs that the runner reads independently,
so either may come first: the row keeps the two facts apart (the order's own
status, whether the saga started) and derives the status from both, which
makes the result the same in whatever order the two logs are applied.

Product names are not in the order's events; they are read from the stock
levels when the order is read, so an order never shows a stale or missing name
just because its product was projected later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.order import Order
from domain.privacy import ERASED_ADDRESS
from projections.facts import Fact
from projections.projection import CannotApplyError, Projection, changed, require
from projections.read_model import AddressRow, OrderItemRow, OrderRow
from projections.saga_progress import SAGA_STARTED
from projections.store import Index, Row, TableSpec, as_decimal, as_json, as_time, as_uuid

PLACED, COMPLETED = get_topic(Order.Placed), get_topic(Order.Completed)
CANCELLATION_REQUESTED, CANCELLED = get_topic(Order.CancellationRequested), get_topic(Order.Cancelled)
ERASED = get_topic(Order.PersonalDataErased)


@dataclass(frozen=True)
class OrderLine:
    product_id: UUID
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class OrderRecord:
    """The stored row: the order's own facts, plus whether its saga has started."""

    id: UUID
    customer_id: UUID
    order_status: str  # PENDING COMPLETED CANCELLED, as the Orders context has it
    saga_started: bool
    total_amount: Decimal
    currency: str
    lines: tuple[OrderLine, ...]
    shipping_address: AddressRow
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    version: int  # 0 until the order's own Placed is projected: such a row is not shown

    @property
    def status(self) -> str:
        if self.order_status == "PENDING" and self.saga_started:
            return "PROCESSING"
        return self.order_status

    def to_row(self, names: dict[UUID, str]) -> OrderRow:
        items = tuple(
            OrderItemRow(line.product_id, names.get(line.product_id, ""), line.quantity, line.unit_price)
            for line in self.lines
        )
        return OrderRow(
            id=self.id, customer_id=self.customer_id, status=self.status, total_amount=self.total_amount,
            currency=self.currency, items=items, shipping_address=self.shipping_address,
            failure_reason=self.failure_reason, created_at=self.created_at, updated_at=self.updated_at,
            version=self.version,
        )


def evolve(row: OrderRecord | None, fact: Fact) -> OrderRecord:
    """An order after one of its own events, or after its saga started."""
    if fact.topic == SAGA_STARTED:
        return _saga_started(row, fact)
    if fact.topic == PLACED:
        placed = _from_order_facts(fact, fact.data["lines"], version=fact.originator_version)
        if row is None:
            return placed
        return changed(placed, saga_started=row.saga_started, updated_at=max(row.updated_at, fact.timestamp))
    current = require(row, fact)
    updated_at = max(current.updated_at, fact.timestamp)
    order = changed(current, version=fact.originator_version, updated_at=updated_at)
    if fact.topic == CANCELLATION_REQUESTED:
        return order
    if fact.topic == COMPLETED:
        return changed(order, order_status="COMPLETED")
    if fact.topic == CANCELLED:
        return changed(order, order_status="CANCELLED", failure_reason=fact.data["reason"])
    if fact.topic == ERASED:  # the customer was forgotten: rebuilt later, the Placed reads erased too
        return changed(order, shipping_address=AddressRow(**ERASED_ADDRESS))
    raise CannotApplyError(f"the order summary does not read {fact.topic}")


def _saga_started(row: OrderRecord | None, fact: Fact) -> OrderRecord:
    if row is not None:
        return changed(row, saga_started=True, updated_at=max(row.updated_at, fact.timestamp))
    # The saga was projected first: keep what it knows until the order's own Placed arrives.
    lines = [{**line, "unit_price": {"amount": line["unit_price"]}} for line in fact.data["lines"]]
    return changed(_from_order_facts(fact, lines, version=0), saga_started=True)


def _from_order_facts(fact: Fact, lines: list[dict[str, Any]], *, version: int) -> OrderRecord:
    data = fact.data
    return OrderRecord(
        id=order_key(fact),
        customer_id=UUID(data["customer_id"]),
        order_status="PENDING",
        saga_started=False,
        total_amount=Decimal(data["total"]["amount"]),
        currency=data["total"]["currency"],
        lines=tuple(
            OrderLine(UUID(x["product_id"]), int(x["quantity"]), Decimal(x["unit_price"]["amount"]))
            for x in lines
        ),
        shipping_address=AddressRow(**data["shipping_address"]),
        failure_reason=None,
        created_at=fact.timestamp,
        updated_at=fact.timestamp,
        version=version,
    )


def order_key(fact: Fact) -> UUID:
    return UUID(fact.data["order_id"]) if fact.topic == SAGA_STARTED else fact.originator_id


class OrderSummary(Projection[OrderRecord]):
    name = "order_summary"
    applications = ("Orders", "OrderFulfillment")
    topics = frozenset({PLACED, COMPLETED, CANCELLATION_REQUESTED, CANCELLED, ERASED, SAGA_STARTED})
    base_table = TableSpec(
        "read_orders",
        (("id", "uuid"), ("customer_id", "uuid"), ("status", "text"), ("order_status", "text"),
         ("saga_started", "int"), ("total_amount", "money"), ("currency", "text"), ("items", "json"),
         ("shipping_address", "json"), ("failure_reason", "text"), ("created_at", "ts"),
         ("updated_at", "ts"), ("version", "int")),
        ("id",),
        (Index("created_idx", "created_at, id"), Index("customer_idx", "customer_id, created_at, id"),
         Index("status_idx", "status, created_at, id")),
    )

    def key(self, fact: Fact) -> UUID:
        return order_key(fact)

    def evolve(self, row: OrderRecord | None, fact: Fact) -> OrderRecord:
        return evolve(row, fact)

    def order_of(self, row: OrderRecord) -> UUID | None:
        return row.id

    def encode(self, row: OrderRecord) -> tuple[Any, ...]:
        # A line's fields are its JSON's keys, in order: product_id, quantity, unit_price.
        address = {
            "street": row.shipping_address.street, "city": row.shipping_address.city,
            "state": row.shipping_address.state, "zip_code": row.shipping_address.zip_code,
            "country": row.shipping_address.country,
        }
        return (
            row.id, row.customer_id, row.status, row.order_status, int(row.saga_started), row.total_amount,
            row.currency, list(row.lines), address, row.failure_reason, row.created_at, row.updated_at,
            row.version,
        )

    def decode(self, record: Row) -> OrderRecord:
        lines = tuple(
            OrderLine(UUID(x["product_id"]), int(x["quantity"]), Decimal(x["unit_price"]))
            for x in as_json(record["items"])
        )
        return OrderRecord(
            id=as_uuid(record["id"]), customer_id=as_uuid(record["customer_id"]),
            order_status=record["order_status"], saga_started=bool(record["saga_started"]),
            total_amount=as_decimal(record["total_amount"]), currency=record["currency"], lines=lines,
            shipping_address=AddressRow(**as_json(record["shipping_address"])),
            failure_reason=record["failure_reason"], created_at=as_time(record["created_at"]),
            updated_at=as_time(record["updated_at"]), version=int(record["version"]),
        )

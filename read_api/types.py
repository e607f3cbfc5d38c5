"""The GraphQL object types. They are views of read-model rows, built with `from_row()`.

An order's payment, shipment and saga are resolved through the request's
DataLoaders, so listing many orders costs one read-model call per kind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TypeVar
from uuid import UUID

import strawberry
from strawberry.dataloader import DataLoader

from projections.read_model import (
    AddressRow,
    OrderRow,
    PaymentRow,
    ProductRow,
    SagaRow,
    SagaTimelineEntry,
    ShipmentRow,
)
from read_api.context import Context, at_once
from read_api.cursor import encode_saga_cursor
from read_api.errors import Problem
from read_api.integrity import StreamIntegrity

Info = strawberry.Info[Context, None]
Row = TypeVar("Row")
Shown = TypeVar("Shown")


@strawberry.enum(description="Where an order stands")
class OrderStatus(Enum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


@strawberry.enum(description="Where an order's fulfilment saga stands")
class SagaStatus(Enum):
    RUNNING = "RUNNING"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"  # an undoing went unconfirmed every time: retrySaga resumes it


@strawberry.type(description="Why a request was refused: a stable code, a message and the input at fault")
class UserError:
    code: str = strawberry.field(description="Stable, machine-readable, e.g. PRICE_MISMATCH")
    message: str = strawberry.field(description="For people")
    field: str | None = strawberry.field(description="The input at fault, e.g. items[0].quantity")

    @classmethod
    def of(cls, problem: Problem) -> UserError:
        return cls(code=problem.code, message=problem.message, field=problem.field)


@strawberry.type
class Address:
    street: str
    city: str
    state: str
    zip_code: str
    country: str

    @classmethod
    def from_row(cls, row: AddressRow) -> Address:
        return cls(
            street=row.street, city=row.city, state=row.state, zip_code=row.zip_code, country=row.country
        )


@strawberry.type
class OrderItem:
    product_id: strawberry.ID
    product_name: str
    quantity: int
    unit_price: Decimal = strawberry.field(description="The catalogue price when the order was placed")


@strawberry.type(description="A payment; status is COMPLETED, FAILED, REFUNDED or VOIDED")
class Payment:
    id: strawberry.ID
    status: str
    amount: Decimal
    currency: str
    transaction_id: str | None
    refunded_amount: Decimal = strawberry.field(description="Given back so far")

    @classmethod
    def from_row(cls, row: PaymentRow) -> Payment:
        return cls(
            id=strawberry.ID(str(row.id)), status=row.status, amount=row.amount, currency=row.currency,
            transaction_id=row.transaction_id, refunded_amount=row.refunded_amount,
        )


@strawberry.type(description="A shipment; status is PREPARING, SHIPPED, DELIVERED, CANCELLED or FAILED")
class Shipment:
    id: strawberry.ID
    status: str
    tracking_number: str | None
    carrier: str | None

    @classmethod
    def from_row(cls, row: ShipmentRow) -> Shipment:
        return cls(
            id=strawberry.ID(str(row.id)), status=row.status, tracking_number=row.tracking_number,
            carrier=row.carrier,
        )


@strawberry.type(description="One step; status is PENDING, REQUESTED, SUCCEEDED, FAILED, TIMED_OUT, "
                             "COMPENSATING, COMPENSATED or SKIPPED")
class SagaStep:
    name: str = strawberry.field(description="payment, inventory, shipping or notification")
    status: str
    attempts: int


@strawberry.type(description="One decision of the saga, in the order it was taken")
class SagaDecision:
    version: int
    type: str
    step: str | None
    detail: str | None
    recorded_at: datetime


@strawberry.type(description="The order-fulfilment saga: the steps done, and undone when one failed")
class Saga:
    id: strawberry.ID
    order_id: strawberry.ID
    status: SagaStatus
    current_step: str | None = strawberry.field(description="The step being done or undone, if any")
    steps: list[SagaStep]
    decisions: strawberry.Private[Sequence[SagaTimelineEntry]]
    updated_at: datetime
    cursor: str = strawberry.field(description="Opaque: `sagas(after: <cursor>)` reads the ones after it")

    @strawberry.field
    def timeline(self) -> list[SagaDecision]:
        # Made when asked for: a saga's row decodes its decisions only when they are read.
        return [SagaDecision(version=e.version, type=e.type, step=e.step, detail=e.detail,
                             recorded_at=e.recorded_at) for e in self.decisions]

    @classmethod
    def from_row(cls, row: SagaRow) -> Saga:
        return cls(
            id=strawberry.ID(str(row.id)), order_id=strawberry.ID(str(row.order_id)),
            status=SagaStatus(row.status), current_step=row.current_step, cursor=encode_saga_cursor(row.id),
            steps=[SagaStep(name=s.name, status=s.status, attempts=s.attempts) for s in row.steps],
            decisions=row.timeline, updated_at=row.updated_at,
        )


@strawberry.type(description="A product of the catalogue and its stock")
class Product:
    id: strawberry.ID
    name: str
    price: Decimal
    currency: str
    on_hand: int = strawberry.field(description="Units in the warehouse")
    reserved: int = strawberry.field(description="Units held for orders not yet shipped")
    available: int = strawberry.field(description="Units that can be ordered: on hand less reserved")

    @classmethod
    def from_row(cls, row: ProductRow) -> Product:
        return cls(
            id=strawberry.ID(str(row.id)), name=row.name, price=row.price, currency=row.currency,
            on_hand=row.on_hand, reserved=row.reserved, available=row.available,
        )


@strawberry.type(description="A customer's order")
class Order:
    id: strawberry.ID
    customer_id: strawberry.ID
    status: OrderStatus
    total_amount: Decimal
    currency: str
    items: list[OrderItem]
    shipping_address: Address
    failure_reason: str | None = strawberry.field(description="Why the order was cancelled")
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(description="The order stream's version this view reflects")
    # An order read as it once was has no projected payment, shipment or saga to show beside it.
    historical: strawberry.Private[bool] = False

    @classmethod
    def from_row(cls, row: OrderRow, *, historical: bool = False) -> Order:
        return cls(
            id=strawberry.ID(str(row.id)), customer_id=strawberry.ID(str(row.customer_id)),
            status=OrderStatus(row.status), total_amount=row.total_amount, currency=row.currency,
            items=[
                OrderItem(product_id=strawberry.ID(str(i.product_id)), product_name=i.product_name,
                          quantity=i.quantity, unit_price=i.unit_price)
                for i in row.items
            ],
            shipping_address=Address.from_row(row.shipping_address), failure_reason=row.failure_reason,
            created_at=row.created_at, updated_at=row.updated_at, version=row.version, historical=historical,
        )

    def _part(
        self, loader: DataLoader[UUID, Row | None], shown: Callable[[Row], Shown],
    ) -> Shown | Awaitable[Shown | None] | None:
        """One of the order's parts, read with it or by its loader; none for an order as it once was."""
        return None if self.historical else at_once(loader, UUID(self.id), shown)

    @strawberry.field(graphql_type=Payment | None,
                      description="The order's payment, once the saga has charged (or failed to)")
    def payment(self, info: Info) -> Payment | Awaitable[Payment | None] | None:
        return self._part(info.context.loaders.payments, Payment.from_row)

    @strawberry.field(graphql_type=Shipment | None,
                      description="The order's shipment, once the saga has booked one")
    def shipment(self, info: Info) -> Shipment | Awaitable[Shipment | None] | None:
        return self._part(info.context.loaders.shipments, Shipment.from_row)

    @strawberry.field(graphql_type=Saga | None,
                      description="The saga fulfilling the order")
    def saga(self, info: Info) -> Saga | Awaitable[Saga | None] | None:
        return self._part(info.context.loaders.sagas, Saga.from_row)

    @strawberry.field(description="Operators: whether the hash chain of each of the order's streams holds "
                                  "(its order, payment, reservation, shipment, notification and saga); null "
                                  "for others")
    async def integrity(self, info: Info) -> list[StreamIntegrity] | None:
        if not info.context.access.may_see("Order", "integrity"):
            return None
        info.context.reads_beyond_read_model()
        streams = await info.context.services.write.order_integrity(UUID(self.id))
        return [StreamIntegrity.of(stream_id, report, kind) for kind, stream_id, report in streams]


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type(description="A page of orders, newest first")
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo
    customer_id: strawberry.Private[UUID | None]
    status: strawberry.Private[str | None]

    @strawberry.field(description="Every order the filters match, over every page; counted only when asked")
    async def total_count(self, info: Info) -> int:
        return await info.context.services.read_model.count_orders(
            customer_id=self.customer_id, status=self.status
        )

"""What the read side offers the API: rows as the projections keep them, and the queries on them.

The projections write these rows; `read_api` serves them. Both sides depend on
this module alone, so a projection's tables can change without the API noticing
as long as these shapes hold. Every query that takes many ids answers them in one
round trip (the API's DataLoaders call them once per request and field).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol
from uuid import UUID


@dataclass(frozen=True)
class OrderItemRow:
    product_id: UUID
    product_name: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class AddressRow:
    street: str
    city: str
    state: str
    zip_code: str
    country: str


@dataclass(frozen=True)
class OrderRow:
    id: UUID
    customer_id: UUID
    status: str  # PENDING PROCESSING COMPLETED CANCELLED
    total_amount: Decimal
    currency: str
    items: tuple[OrderItemRow, ...]
    shipping_address: AddressRow
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    version: int  # the order aggregate's version these rows reflect


@dataclass(frozen=True)
class PaymentRow:
    id: UUID
    order_id: UUID
    status: str  # COMPLETED FAILED REFUNDED VOIDED
    amount: Decimal
    currency: str
    transaction_id: str | None
    refunded_amount: Decimal
    created_at: datetime
    updated_at: datetime
    failure_reason: str | None = None  # why the charge was declined, or why the payment was voided
    refund_reference: str | None = None  # the gateway's reference of the latest refund
    processed_at: datetime | None = None  # when the gateway answered the charge, taken or declined
    refunded_at: datetime | None = None  # when the latest refund was given


@dataclass(frozen=True)
class ShipmentRow:
    id: UUID
    order_id: UUID
    status: str  # PREPARING SHIPPED DELIVERED CANCELLED FAILED
    tracking_number: str | None
    carrier: str | None
    created_at: datetime
    updated_at: datetime
    failure_reason: str | None = None  # why the carrier refused it, or why it was cancelled


@dataclass(frozen=True)
class NotificationRow:
    id: UUID
    order_id: UUID
    status: str
    channel: str | None
    updated_at: datetime


@dataclass(frozen=True)
class SagaStepRow:
    name: str  # payment inventory shipping notification
    status: str  # PENDING REQUESTED SUCCEEDED FAILED TIMED_OUT COMPENSATING COMPENSATED SKIPPED
    attempts: int


@dataclass(frozen=True)
class SagaTimelineEntry:
    """One decision of the saga, in the order it was taken."""

    version: int
    type: str  # the saga event's name: StepRequested, StepFailed, CompensationStarted, ...
    step: str | None
    detail: str | None
    recorded_at: datetime


@dataclass(frozen=True)
class SagaRow:
    id: UUID
    order_id: UUID
    status: str  # RUNNING COMPENSATING COMPLETED COMPENSATED
    current_step: str | None
    steps: tuple[SagaStepRow, ...]
    updated_at: datetime
    # A tuple; read from the store, a sequence that decodes the stored decisions when first read
    # (`saga_progress.StoredTimeline`): most reads of a saga never look at them.
    timeline: Sequence[SagaTimelineEntry] = field(default=())


@dataclass(frozen=True)
class OrderView:
    """An order with its payment, shipment and saga, as projected at one moment.

    `order` is None while the order's own row is not projected (or not yet placed):
    its payment, shipment and saga may be projected before it.
    """

    order: OrderRow | None
    payment: PaymentRow | None
    shipment: ShipmentRow | None
    saga: SagaRow | None


@dataclass(frozen=True)
class ProductRow:
    id: UUID
    name: str
    price: Decimal
    currency: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class DeadLetterRow:
    id: str
    queue: str
    message_type: str
    error: str
    attempts: int
    parked_at: datetime


class ParkedMessage(Protocol):
    """A message the bus parked, as the bus lists it (both of infra's buses fit)."""

    @property
    def id(self) -> str: ...

    @property
    def queue(self) -> str: ...

    @property
    def message_type(self) -> str: ...

    @property
    def error(self) -> str: ...

    @property
    def attempts(self) -> int: ...

    @property
    def parked_at(self) -> datetime: ...


@dataclass(frozen=True)
class ProjectionStatusRow:
    name: str
    position: int  # the last notification id applied, summed over the applications it follows
    lag: int  # notifications recorded but not yet applied
    failed: int = 0  # events it could not apply: parked, skipped and reported


@dataclass(frozen=True)
class OrderPage:
    rows: tuple[OrderRow, ...]
    has_next_page: bool
    total_count: int | None  # the orders that match, over every page; None when not asked for


@dataclass(frozen=True)
class OrderCursor:
    """Where a page of orders (newest first) ends: the last row's creation time and id."""

    created_at: datetime
    id: UUID


class ReadModel(Protocol):
    """The queries the API runs against the read store."""

    async def orders_by_id(self, ids: Sequence[UUID]) -> dict[UUID, OrderRow]: ...

    async def orders(
        self,
        *,
        customer_id: UUID | None = None,
        status: str | None = None,
        first: int = 20,
        after: OrderCursor | None = None,
        count: bool = True,
        offset: int = 0,
    ) -> OrderPage:
        """Newest first (created_at, then id, descending); `after` continues a previous page.

        `count`: whether to count every matching order too (`total_count`), which costs
        a pass over them all; a page alone costs only its rows. `offset` skips that many
        orders (after `after`, if given), for clients that number their pages.
        """
        ...

    async def count_orders(self, *, customer_id: UUID | None = None, status: str | None = None) -> int:
        """How many orders match, over every page."""
        ...

    async def order_views(self, ids: Sequence[UUID]) -> dict[UUID, OrderView]:
        """Each order whose row is projected, with its payment, shipment and saga, in one round trip.

        An order whose row is not projected at all has no entry: ask `payments_by_order` and the
        others for its parts. An order whose row is there but not yet placed has one, with `order` None.
        """
        ...

    async def payments_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, PaymentRow]: ...

    async def shipments_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, ShipmentRow]: ...

    async def notifications_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, NotificationRow]: ...

    async def sagas_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, SagaRow]: ...

    async def list_sagas(
        self, *, status: str | None = None, first: int = 20, after: UUID | None = None
    ) -> list[SagaRow]:
        """Sagas in a stable order (by saga id), so paging never skips or repeats one while they move on.

        `after` is the id of the last saga of the previous page; `status` keeps only those in it.
        """
        ...

    async def products(self) -> list[ProductRow]: ...

    async def products_by_id(self, ids: Sequence[UUID]) -> dict[UUID, ProductRow]: ...

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetterRow]: ...

    async def projection_status(self) -> list[ProjectionStatusRow]: ...

    async def wait_for_order(
        self, order_id: UUID, version: int, timeout: float  # noqa: ASYNC109 - a bound, not a cancel scope
    ) -> OrderRow | None:
        """The order once its row reflects at least `version`, waiting at most `timeout` seconds.

        Read-your-writes: the API records a command, knows the version it wrote,
        and waits here before answering. None on timeout (the caller then answers
        with what it has).
        """
        ...

    def order_changes(self, order_id: UUID) -> AsyncIterator[OrderRow]:
        """The order as projected, each time a projection changes it (its row, payment, shipment or saga).

        Yields the current row first when the order exists. Ends when the consumer stops iterating.
        """
        ...

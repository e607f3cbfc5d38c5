"""The GraphQL queries: the read model for the present, the event store for audits."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry
from graphql import GraphQLError

from domain.base import DomainError
from projections.read_model import OrderCursor
from read_api.cursor import (
    InvalidCursorError,
    decode_cursor,
    decode_event_cursor,
    decode_saga_cursor,
    encode_cursor,
)
from read_api.errors import VALIDATION_ERROR, problem_from
from read_api.integrity import StreamIntegrity
from read_api.operations import DeadLetter, ProjectionStatus, RecordedEvent
from read_api.services import parse_uuid
from read_api.types import (
    Info,
    Order,
    OrderConnection,
    OrderEdge,
    OrderStatus,
    PageInfo,
    Product,
    Saga,
    SagaStatus,
)

MAX_PAGE = 100
MAX_EVENTS_PAGE = 500
"""Events a page of `events` may hold: a stream's whole story is read a page at a time."""


def bad_input(message: str, field: str, code: str = VALIDATION_ERROR) -> GraphQLError:
    """A refused query argument, as a GraphQL error whose extensions name the code and the argument."""
    return GraphQLError(message, extensions={"code": code, "field": field})


def argument_id(value: str, field: str) -> UUID:
    try:
        return parse_uuid(value, field)
    except DomainError as error:
        problem = problem_from(error)
        raise bad_input(problem.message, field) from None


@strawberry.type
class Query:
    @strawberry.field(description="One order, as projected (or from the event store if it is too new)")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        context = info.context
        row, view = await context.services.find_order_view(context.access, argument_id(id, "id"),
                                                           beyond=context.reads_beyond_read_model)
        if row is None:
            return None
        context.loaders.remember(row, view)
        return Order.from_row(row)

    @strawberry.field(description=f"Orders, newest first; `first` is 1 to {MAX_PAGE}")
    async def orders(
        self, info: Info, customer_id: strawberry.ID | None = None, status: OrderStatus | None = None,
        first: int | None = 20, after: str | None = None,
    ) -> OrderConnection:
        first = 20 if first is None else first
        if not 1 <= first <= MAX_PAGE:
            raise bad_input(f"first must be between 1 and {MAX_PAGE}, not {first}", "first")
        requested = None if customer_id is None else argument_id(customer_id, "customerId")
        customer = info.context.access.customer_filter(requested)
        try:
            cursor = None if after is None else decode_cursor(after)
        except InvalidCursorError as error:
            raise bad_input(str(error), "after", "INVALID_CURSOR") from None
        wanted = None if status is None else status.value
        page = await info.context.services.read_model.orders(
            customer_id=customer, status=wanted, first=first, after=cursor, count=False,
        )
        for row in page.rows:
            info.context.loaders.remember(row)
        edges = [
            OrderEdge(cursor=encode_cursor(OrderCursor(created_at=row.created_at, id=row.id)),
                      node=Order.from_row(row))
            for row in page.rows
        ]
        end = edges[-1].cursor if edges else None
        return OrderConnection(
            edges=edges, page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=end),
            customer_id=customer, status=wanted,
        )

    @strawberry.field(description="The catalogue with stock levels")
    async def products(self, info: Info) -> list[Product]:
        return [Product.from_row(row) for row in await info.context.services.read_model.products()]

    @strawberry.field
    async def product(self, info: Info, id: strawberry.ID) -> Product | None:
        row = await info.context.loaders.products.load(argument_id(id, "id"))
        return None if row is None else Product.from_row(row)

    @strawberry.field(description="The saga fulfilling an order")
    async def saga(self, info: Info, order_id: strawberry.ID) -> Saga | None:
        row = await info.context.loaders.sagas.load(argument_id(order_id, "orderId"))
        return None if row is None else Saga.from_row(row)

    @strawberry.field(description=f"Operator: sagas, in a stable order, `first` (1 to {MAX_PAGE}) a page; "
                                  "`after` is the last one's `cursor`. `status: NEEDS_ATTENTION` lists those "
                                  "waiting for an operator's `retrySaga`")
    async def sagas(
        self, info: Info, status: SagaStatus | None = None, first: int | None = 20, after: str | None = None,
    ) -> list[Saga]:
        first = 20 if first is None else first
        if not 1 <= first <= MAX_PAGE:
            raise bad_input(f"first must be between 1 and {MAX_PAGE}, not {first}", "first")
        try:
            last = None if after is None else decode_saga_cursor(after)
        except InvalidCursorError as error:
            raise bad_input(str(error), "after", "INVALID_CURSOR") from None
        rows = await info.context.services.read_model.list_sagas(
            status=None if status is None else status.value, first=first, after=last,
        )
        return [Saga.from_row(row) for row in rows]

    @strawberry.field(description="Audit: one stream's events in order, read from the event store. "
                                  "Any stream: an order, payment, stock, reservation, shipment, notification "
                                  f"or saga id; versions are inclusive. A page holds `first` (1 to "
                                  f"{MAX_EVENTS_PAGE}) events; `after` is the last one's `cursor`")
    async def events(
        self, info: Info, stream_id: strawberry.ID, from_version: int | None = None,
        to_version: int | None = None, first: int | None = 100, after: str | None = None,
    ) -> list[RecordedEvent]:
        first = 100 if first is None else first
        if not 1 <= first <= MAX_EVENTS_PAGE:
            raise bad_input(f"first must be between 1 and {MAX_EVENTS_PAGE}, not {first}", "first")
        stream = argument_id(stream_id, "streamId")
        try:
            last_read = None if after is None else decode_event_cursor(after, stream)
        except InvalidCursorError as error:
            raise bad_input(str(error), "after", "INVALID_CURSOR") from None
        events = await info.context.services.write.history(
            stream, from_version=from_version, to_version=to_version, after=last_read, limit=first,
        )
        return [RecordedEvent.from_model(event) for event in events]

    @strawberry.field(description="Audit: the order as it stood at a version or a moment, from the event "
                                  "store; its payment, shipment and saga are not shown (see `events`)")
    async def order_at(
        self, info: Info, id: strawberry.ID, version: int | None = None, at: datetime | None = None,
    ) -> Order | None:
        if version is not None and version < 1:
            raise bad_input("version counts from 1", "version")
        row = await info.context.services.write.order(argument_id(id, "id"), version=version, at=at)
        return None if row is None else Order.from_row(row, historical=True)

    @strawberry.field(description="Messages parked after their last attempt")
    async def dead_letters(self, info: Info, queue: str | None = None) -> list[DeadLetter]:
        rows = await info.context.services.dead_letters(queue)
        return [DeadLetter.from_row(row) for row in rows]

    @strawberry.field(description="Each projection's position and lag")
    async def projections(self, info: Info) -> list[ProjectionStatus]:
        rows = await info.context.services.read_model.projection_status()
        return [ProjectionStatus.from_row(row) for row in rows]

    @strawberry.field(description="Audit: whether a stream's hash chain holds, recomputed from the event "
                                  "store (as `saga verify STREAM_ID`); a stream the store does not hold has "
                                  "length 0")
    async def stream_integrity(self, info: Info, stream_id: strawberry.ID) -> StreamIntegrity:
        stream = argument_id(stream_id, "streamId")
        return StreamIntegrity.of(stream, await info.context.services.write.stream_integrity(stream))

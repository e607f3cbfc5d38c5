"""The GraphQL mutations: commands to the write side, refusals as payload errors.

A refused mutation answers `errors` (code, message, the input at fault, spelled
as the client sent it) rather than a GraphQL error, so clients handle business
refusals as data; a refused input writes no event.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any

import strawberry

from domain.base import DomainError
from read_api.errors import NOT_FOUND, UNAVAILABLE, Problem, problem_from
from read_api.types import Info, Order, Product, Saga, UserError
from read_api.write_side import BusUnavailableError


@strawberry.input
class OrderItemInput:
    product_id: strawberry.ID
    quantity: int
    price: Decimal | None = strawberry.field(
        default=None, description="Optional; if given it must equal the catalogue price"
    )


@strawberry.input
class AddressInput:
    street: str
    city: str
    state: str
    zip_code: str
    country: str


@strawberry.input
class PlaceOrderInput:
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Whose order it is; a customer's token places for itself, so may omit it"
    )
    items: list[OrderItemInput]
    shipping_address: AddressInput
    idempotency_key: str | None = strawberry.field(
        default=None, description="Placing again with the same key returns the first order, never a second"
    )

    def fields(self) -> dict[str, Any]:
        """The write side's spelling of the input."""
        return {
            "customer_id": self.customer_id,
            "items": [
                {"product_id": i.product_id, "quantity": i.quantity}
                | ({} if i.price is None else {"price": i.price})
                for i in self.items
            ],
            "shipping_address": asdict(self.shipping_address),
        }


@strawberry.type
class PlaceOrderPayload:
    order: Order | None
    errors: list[UserError]


@strawberry.type
class CancelOrderPayload:
    order: Order | None
    errors: list[UserError]


@strawberry.type
class RestockPayload:
    product: Product | None
    errors: list[UserError]


@strawberry.type
class ForgetCustomerPayload:
    customer_id: strawberry.ID | None
    orders: list[strawberry.ID]
    cancelled: list[strawberry.ID] = strawberry.field(description="the orders in flight, cancelled first")
    forgotten_before: bool
    errors: list[UserError]


@strawberry.type
class RetrySagaPayload:
    saga: Saga | None
    errors: list[UserError]


@strawberry.type
class RedrivePayload:
    ok: bool
    errors: list[UserError]


def refused(error: DomainError, **renames: str) -> list[UserError]:
    return [UserError.of(problem_from(error, renames=renames))]


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Place an order at catalogue prices; answers it as projected")
    async def place_order(self, info: Info, input: PlaceOrderInput) -> PlaceOrderPayload:
        try:
            context = info.context
            row = await context.services.place_order(context.access, input.fields(), input.idempotency_key)
        except DomainError as error:
            return PlaceOrderPayload(order=None, errors=refused(error))
        return PlaceOrderPayload(order=Order.from_row(row), errors=[])

    @strawberry.mutation(description="Ask for the order to be cancelled; the saga undoes what was done")
    async def cancel_order(
        self, info: Info, id: strawberry.ID, reason: str | None = None
    ) -> CancelOrderPayload:
        try:
            row = await info.context.services.request_cancellation(info.context.access, id, reason)
        except DomainError as error:
            return CancelOrderPayload(order=None, errors=refused(error, order_id="id"))
        return CancelOrderPayload(order=Order.from_row(row), errors=[])

    @strawberry.mutation(description="Admin: add units of a product to the warehouse")
    async def restock(self, info: Info, product_id: strawberry.ID, quantity: int) -> RestockPayload:
        try:
            row = await info.context.services.restock(product_id, quantity)
        except DomainError as error:
            return RestockPayload(product=None, errors=refused(error))
        return RestockPayload(product=Product.from_row(row), errors=[])

    @strawberry.mutation(description=(
        "Admin: forget a customer. Their orders in flight are cancelled and compensated first; then "
        "their personal data (the shipping address) reads [erased] everywhere; amounts, items and "
        "statuses stay"
    ))
    async def forget_customer(self, info: Info, customer_id: strawberry.ID) -> ForgetCustomerPayload:
        try:
            done = await info.context.services.forget_customer(info.context.access, customer_id)
        except DomainError as error:
            return ForgetCustomerPayload(customer_id=None, orders=[], cancelled=[], forgotten_before=False,
                                         errors=refused(error))
        return ForgetCustomerPayload(
            customer_id=strawberry.ID(str(done.customer_id)),
            orders=[strawberry.ID(str(o)) for o in done.orders],
            cancelled=[strawberry.ID(str(o)) for o in done.cancelled],
            forgotten_before=done.forgotten_before, errors=[],
        )

    @strawberry.mutation(description=(
        "Admin: resume a saga that NEEDS_ATTENTION: its stuck undoing is sent again with fresh attempts, "
        "and once confirmed the compensation goes on and the order is cancelled. Any other saga, or an "
        "order without one, is refused and nothing is written"
    ))
    async def retry_saga(self, info: Info, order_id: strawberry.ID) -> RetrySagaPayload:
        try:
            row = await info.context.services.retry_saga(info.context.access, order_id)
        except DomainError as error:
            return RetrySagaPayload(saga=None, errors=refused(error, order_id="orderId"))
        return RetrySagaPayload(saga=None if row is None else Saga.from_row(row), errors=[])

    @strawberry.mutation(description="Admin: send a parked message back to its queue as a first attempt")
    async def redrive_dead_letter(self, info: Info, id: strawberry.ID) -> RedrivePayload:
        try:
            ok = await info.context.services.write.redrive(id)
        except DomainError as error:
            return RedrivePayload(ok=False, errors=refused(error))
        except BusUnavailableError as error:
            return RedrivePayload(ok=False, errors=[UserError.of(Problem(UNAVAILABLE, str(error)))])
        if not ok:
            missing = Problem(NOT_FOUND, f"no parked message {id}", "id")
            return RedrivePayload(ok=False, errors=[UserError.of(missing)])
        return RedrivePayload(ok=True, errors=[])

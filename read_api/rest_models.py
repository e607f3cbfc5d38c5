"""What the REST routes answer, shaped as the old system's types that its clients decode.

Names and JSON types are the contract: ids are UUID strings, times RFC 3339,
statuses lower case, and money a JSON number (the old types are float64) that
`rest_envelope` writes exactly from the Decimal. These models build every
answer and are the routes' OpenAPI schemas, so the document cannot drift from
what is sent. Every field is always written (optional ones as null), so the
schemas mark them all required.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from commands.orders import OrderItem
from domain.order import MAX_LINES
from domain.values import Address
from process_managers.saga import OrderFulfillment
from projections.read_model import AddressRow, OrderRow, PaymentRow, ShipmentRow

Money = Annotated[Decimal, WithJsonSchema({"type": "number", "description": "an amount, exact to the cent"})]

PAYMENT_METHOD = "credit_card"
"""The one way the gateway takes money; the old clients expect the method named."""


class Shape(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)


class AddressOut(Shape):
    street: str
    city: str
    state: str
    zip_code: str
    country: str


class OrderItemOut(Shape):
    product_id: UUID
    product_name: str
    quantity: int
    price: Money = Field(description="the unit price")


class OrderOut(Shape):
    id: UUID
    customer_id: UUID
    items: list[OrderItemOut]
    total_amount: Money
    currency: str
    status: Literal["pending", "processing", "completed", "cancelled"]
    shipping_address: AddressOut
    saga_id: UUID = Field(description="the id of the saga that fulfils the order")
    failure_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    version: int


class PaymentOut(Shape):
    id: UUID
    order_id: UUID
    customer_id: UUID
    saga_id: UUID
    amount: Money
    currency: str
    payment_method: str
    status: Literal["completed", "failed", "refunded", "voided"]
    transaction_id: str | None = None
    failure_reason: str | None = None
    refunded_amount: Money
    refund_reference: str | None = Field(default=None, description="the latest refund's reference")
    created_at: datetime
    updated_at: datetime
    processed_at: datetime | None = Field(default=None, description="when the charge was taken or declined")
    refunded_at: datetime | None = Field(default=None, description="when the latest refund was given")


class ShipmentOut(Shape):
    id: UUID
    order_id: UUID
    customer_id: UUID
    saga_id: UUID
    status: Literal["preparing", "shipped", "delivered", "cancelled", "failed"]
    tracking_id: str = Field(description="the carrier's tracking number; empty if it never booked one")
    address: AddressOut
    failure_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class Pagination(Shape):
    page: int
    limit: int
    total: int = Field(description="the customer's orders over every page")
    has_more: bool


class OrdersPage(Shape):
    orders: list[OrderOut] = Field(description="newest first")
    pagination: Pagination


class ErrorDetails(Shape):
    field: str | None = Field(default=None, description="the input at fault, as the client spelled it")
    reason: str | None = Field(default=None, description="the domain's own code: PRICE_MISMATCH, ...")


class ErrorOut(Shape):
    code: str = Field(description="BAD_REQUEST, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, INTERNAL_SERVER_ERROR")
    message: str
    details: ErrorDetails | None


class Envelope(Shape):
    success: bool
    message: str
    timestamp: datetime
    request_id: str = Field(description="the client's X-Request-ID, or one made for the request")


class OrderAnswer(Envelope):
    data: OrderOut
    error: None


class PaymentAnswer(Envelope):
    data: PaymentOut
    error: None


class ShipmentAnswer(Envelope):
    data: ShipmentOut
    error: None


class OrdersPageAnswer(Envelope):
    data: OrdersPage
    error: None


class ErrorAnswer(Envelope):
    data: None
    error: ErrorOut


class PlaceOrderBody(BaseModel):
    """The body of POST /api/v1/orders; documented only, as the command validates the input itself."""

    customer_id: UUID
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_LINES)]
    shipping_address: Address


def saga_id(order_id: UUID) -> UUID:
    return OrderFulfillment.create_id(order_id)


def address_out(address: AddressRow) -> AddressOut:
    return AddressOut(street=address.street, city=address.city, state=address.state,
                      zip_code=address.zip_code, country=address.country)


def order_out(row: OrderRow) -> OrderOut:
    items = [OrderItemOut(product_id=i.product_id, product_name=i.product_name, quantity=i.quantity,
                          price=i.unit_price) for i in row.items]
    return OrderOut(
        id=row.id, customer_id=row.customer_id, items=items, total_amount=row.total_amount,
        currency=row.currency, status=row.status.lower(), shipping_address=address_out(row.shipping_address),
        saga_id=saga_id(row.id), failure_reason=row.failure_reason, created_at=row.created_at,
        updated_at=row.updated_at, version=row.version,
    )


def payment_out(payment: PaymentRow, order: OrderRow) -> PaymentOut:
    return PaymentOut(
        id=payment.id, order_id=payment.order_id, customer_id=order.customer_id, saga_id=saga_id(order.id),
        amount=payment.amount, currency=payment.currency, payment_method=PAYMENT_METHOD,
        status=payment.status.lower(), transaction_id=payment.transaction_id,
        failure_reason=payment.failure_reason, refunded_amount=payment.refunded_amount,
        refund_reference=payment.refund_reference, created_at=payment.created_at,
        updated_at=payment.updated_at, processed_at=payment.processed_at, refunded_at=payment.refunded_at,
    )


def shipment_out(shipment: ShipmentRow, order: OrderRow) -> ShipmentOut:
    return ShipmentOut(
        id=shipment.id, order_id=shipment.order_id, customer_id=order.customer_id, saga_id=saga_id(order.id),
        status=shipment.status.lower(), tracking_id=shipment.tracking_number or "",
        address=address_out(order.shipping_address), failure_reason=shipment.failure_reason,
        created_at=shipment.created_at, updated_at=shipment.updated_at,
    )


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with nested models written in place, as an OpenAPI operation can hold it."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved

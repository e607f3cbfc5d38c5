"""The REST routes kept from the old system, with its envelope and its snake_case bodies.

Every answer is `{success, message, data, error{code, message, details}, timestamp,
request_id}`; a refusal names the field in `error.details.field`. Money is a
string ("2599.98") and statuses are lower case, as the old clients read them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from commands.base import field_path
from domain.base import DomainError, InvalidStateError, NotFoundError
from projections.read_model import OrderRow, PaymentRow, ShipmentRow
from read_api.errors import NOT_FOUND, VALIDATION_ERROR, Problem, problem_from
from read_api.services import Services, parse_uuid

PREFIX = "/api/v1"
MAX_LIMIT = 100
MAX_DEPTH_OF_PAGES = 10_000
"""page x limit beyond this is refused: deep pages belong to the GraphQL cursors."""


def envelope(
    request: Request, *, status: int = 200, message: str = "", data: Any = None,
    problem: Problem | None = None,
) -> JSONResponse:
    request_id = request.headers.get("x-request-id") or str(uuid4())
    body = {
        "success": problem is None,
        "message": message or (problem.message if problem else "ok"),
        "data": data,
        "error": None if problem is None else {
            "code": problem.code, "message": problem.message,
            "details": None if problem.field is None else {"field": problem.field},
        },
        "timestamp": datetime.now(UTC).isoformat(),
        "request_id": request_id,
    }
    return JSONResponse(body, status_code=status, headers={"x-request-id": request_id})


def refused(request: Request, error: DomainError, *, status: int | None = None) -> JSONResponse:
    """A domain refusal: 404 for what does not exist, 409 for a state that forbids it, else 400."""
    if status is None:
        status = 404 if isinstance(error, NotFoundError) else 400
        status = 409 if isinstance(error, InvalidStateError) else status
    return envelope(request, status=status, problem=problem_from(error, graphql=False))


def not_found(request: Request, what: str) -> JSONResponse:
    code = f"{what.upper()}_NOT_FOUND"
    return envelope(request, status=404, problem=Problem(code, f"{what} not found"))


def rest_router(services: Services) -> APIRouter:
    router = APIRouter(prefix=PREFIX)

    @router.post("/orders", status_code=201)
    async def place_order(request: Request) -> JSONResponse:
        """Place an order: `{customer_id, items[{product_id, quantity, price?}], shipping_address}`."""
        try:
            data = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return envelope(request, status=400, problem=Problem("INVALID_JSON", "the body is not JSON"))
        if not isinstance(data, dict):
            not_object = Problem(VALIDATION_ERROR, "the body must be a JSON object")
            return envelope(request, status=400, problem=not_object)
        try:
            row = await services.place_order(data, request.headers.get("idempotency-key"))
        except DomainError as error:
            # A product the body names but the catalogue lacks is a fault of the body, not a missing resource.
            return refused(request, error, status=400 if isinstance(error, NotFoundError) else None)
        return envelope(request, status=201, message="order placed", data=order_json(row))

    @router.get("/orders/{order_id}")
    async def get_order(request: Request, order_id: str) -> JSONResponse:
        try:
            row = await services.find_order(parse_uuid(order_id, "order_id"))
        except DomainError as error:
            return refused(request, error)
        return not_found(request, "order") if row is None else envelope(request, data=order_json(row))

    @router.get("/customers/{customer_id}/orders")
    async def customer_orders(
        request: Request, customer_id: str,
        page: Annotated[int, Query(ge=1)] = 1, limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
    ) -> JSONResponse:
        try:
            customer = parse_uuid(customer_id, "customer_id")
        except DomainError as error:
            return refused(request, error)
        if page * limit > MAX_DEPTH_OF_PAGES:
            message = f"page x limit may be at most {MAX_DEPTH_OF_PAGES}; GraphQL cursors go deeper"
            return envelope(request, status=400, problem=Problem(VALIDATION_ERROR, message, "page"))
        # The read model pages by cursor; one query for the rows up to this page, then its slice.
        found = await services.read_model.orders(customer_id=customer, first=page * limit)
        rows, total = found.rows[(page - 1) * limit:], found.total_count or 0
        data = {
            "orders": [order_json(row) for row in rows], "page": page, "limit": limit,
            "total": total, "total_pages": -(-total // limit),
        }
        return envelope(request, data=data)

    @router.get("/orders/{order_id}/payment")
    async def order_payment(request: Request, order_id: str) -> JSONResponse:
        return await _by_order(request, order_id, "payment")

    @router.get("/orders/{order_id}/shipment")
    async def order_shipment(request: Request, order_id: str) -> JSONResponse:
        return await _by_order(request, order_id, "shipment")

    async def _by_order(request: Request, order_id: str, what: str) -> JSONResponse:
        try:
            key = parse_uuid(order_id, "order_id")
        except DomainError as error:
            return refused(request, error)
        read = services.read_model
        found: Mapping[UUID, PaymentRow | ShipmentRow]
        found = await (read.payments_by_order([key]) if what == "payment" else read.shipments_by_order([key]))
        row = found.get(key)
        if row is None:
            return not_found(request, what)
        data = payment_json(row) if isinstance(row, PaymentRow) else shipment_json(row)
        return envelope(request, data=data)

    return router


def install_rest_errors(api: FastAPI) -> None:
    """Refusals under /api/v1 that FastAPI makes itself (a bad query parameter, no such route), enveloped."""

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        if not request.url.path.startswith(PREFIX):
            return await request_validation_exception_handler(request, error)
        first = error.errors()[0]
        location = [part for part in first.get("loc", ()) if part not in ("query", "path", "body")]
        message = str(first.get("msg", "invalid request"))
        problem = Problem(VALIDATION_ERROR, message, field_path(location) or None)
        return envelope(request, status=400, problem=problem)

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if not request.url.path.startswith(PREFIX):
            return await http_exception_handler(request, error)
        code = NOT_FOUND if error.status_code == 404 else f"HTTP_{error.status_code}"
        return envelope(request, status=error.status_code, problem=Problem(code, str(error.detail)))


def order_json(row: OrderRow) -> dict[str, Any]:
    address = row.shipping_address
    return {
        "id": str(row.id), "customer_id": str(row.customer_id), "status": row.status.lower(),
        "total_amount": str(row.total_amount), "currency": row.currency,
        "items": [
            {"product_id": str(i.product_id), "product_name": i.product_name, "quantity": i.quantity,
             "price": str(i.unit_price)}
            for i in row.items
        ],
        "shipping_address": {"street": address.street, "city": address.city, "state": address.state,
                             "zip_code": address.zip_code, "country": address.country},
        "failure_reason": row.failure_reason,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
        "version": row.version,
    }


def payment_json(row: PaymentRow) -> dict[str, Any]:
    return {
        "id": str(row.id), "order_id": str(row.order_id), "status": row.status.lower(),
        "amount": str(row.amount), "currency": row.currency, "transaction_id": row.transaction_id,
        "refunded_amount": str(row.refunded_amount), "updated_at": row.updated_at.isoformat(),
    }


def shipment_json(row: ShipmentRow) -> dict[str, Any]:
    return {
        "id": str(row.id), "order_id": str(row.order_id), "status": row.status.lower(),
        "tracking_number": row.tracking_number, "carrier": row.carrier,
        "updated_at": row.updated_at.isoformat(),
    }

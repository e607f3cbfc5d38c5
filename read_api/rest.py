"""The REST routes kept from the old system: its paths, its envelope, and the answers its clients decode.

Every answer is the old envelope (`rest_envelope`), its `data` shaped as the old
system's types (`rest_models`): money a JSON number written exactly, statuses
lower case, each order with its saga's id. A refusal carries the old API's code
for its status (BAD_REQUEST, NOT_FOUND ...), the field at fault and the domain's
own code beside it. An unknown route, wherever it is, answers 404 "Route not
found"; an unexpected failure answers 500 with the request id and no detail, and
is logged once, with its traceback and that id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from commands.command import field_path
from domain.base import DomainError, NotFoundError
from projections.read_model import OrderRow
from read_api import rest_models as m
from read_api.errors import Problem, problem_from
from read_api.rest_envelope import (
    BAD_REQUEST,
    CODES,
    INTERNAL_SERVER_ERROR,
    NOT_FOUND,
    STATUS_OF_REFUSAL,
    answer,
    problem_response,
    request_id_of,
)
from read_api.services import Services, parse_uuid

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_LIMIT = 100
MAX_PAGE = 10**12
"""Far past any customer's orders; keeps every number of the answer within the old clients' 64-bit ints."""
ROUTE_NOT_FOUND = "Route not found"
UNEXPECTED = "an unexpected error occurred; quote the request id when reporting it"


REFUSALS: dict[int | str, str] = {
    400: "a bad id, body or parameter", 401: "no bearer token, or a bad one",
    403: "the token's scopes do not allow it", 404: "no such order, or not one of the caller's",
    413: "a body over the size limit", 500: "an unexpected failure", "default": "any other refusal",
}


def documented(success: int, shape: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """Every status a route may answer, each with its envelope (`default`: any other refusal)."""
    answers: dict[int | str, dict[str, Any]] = {success: {"model": shape, "description": "the answer"}}
    for status, why in REFUSALS.items():
        answers[status] = {"model": m.ErrorAnswer, "description": why}
    return answers


PLACE_ORDER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": m.inline_schema(m.PlaceOrderBody)}}}}


class EnvelopedRoute(APIRoute):
    """A REST route whose unexpected failure answers 500 in the envelope, logged here once."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as error:
                if handled_by_the_app(request, error):
                    raise
                request_id = request_id_of(request)
                log.exception("%s %s failed unexpectedly (request %s)", request.method, request.url.path,
                              request_id, extra={"request_id": request_id})
                return problem_response(request, Problem(INTERNAL_SERVER_ERROR, UNEXPECTED), 500)

        return guarded


def handled_by_the_app(request: Request, error: Exception) -> bool:
    """Whether the app answers this error itself: HTTP errors, bad parameters, the permission layer's."""
    handled = request.app.exception_handlers
    return isinstance(error, tuple(k for k in handled if isinstance(k, type) and k is not Exception))


def refused(request: Request, error: DomainError, *, absent: int = 400) -> Response:
    """A domain refusal: 401/403 from the permission layer, `absent` for what does not exist, else 400."""
    status = STATUS_OF_REFUSAL.get(error.code, absent if isinstance(error, NotFoundError) else 400)
    return problem_response(request, problem_from(error, graphql=False), status)


def not_found(request: Request, what: str) -> Response:
    return problem_response(request, Problem(NOT_FOUND, f"{what} not found"), 404)


def bad_request(request: Request, message: str) -> Response:
    return problem_response(request, Problem(BAD_REQUEST, message), 400)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def rest_router(services: Services) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=EnvelopedRoute, tags=["REST (the old system's)"])

    @router.post("/orders", status_code=201, responses=documented(201, m.OrderAnswer),
                 openapi_extra=PLACE_ORDER_BODY)
    async def place_order(request: Request) -> Response:
        """Place an order at catalogue prices; an `Idempotency-Key` header makes a retry return the first."""
        try:
            # Prices are read as Decimals, so a client's 49.99 is compared with the catalogue exactly.
            data = json.loads(await request.body(), parse_float=Decimal, parse_constant=_not_json)
        except (ValueError, RecursionError):
            return bad_request(request, "the body is not JSON")
        if not isinstance(data, dict):
            return bad_request(request, "the body must be a JSON object")
        try:
            key = request.headers.get("idempotency-key")
            row = await services.place_order(request.state.access, data, key)
        except DomainError as error:
            # A product the body names but the catalogue lacks is a fault of the body, not a missing resource.
            return refused(request, error)
        return answer(request, m.order_out(row), status=201, message="Order created successfully")

    @router.get("/orders/{order_id}", responses=documented(200, m.OrderAnswer))
    async def get_order(request: Request, order_id: str) -> Response:
        """One order, with its items, address and saga id."""
        try:
            row = await find_order(request, order_id)
        except DomainError as error:
            return refused(request, error, absent=404)
        return not_found(request, "Order") if row is None else answer(request, m.order_out(row))

    @router.get("/customers/{customer_id}/orders", responses=documented(200, m.OrdersPageAnswer))
    async def customer_orders(
        request: Request, customer_id: str,
        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
    ) -> Response:
        """A customer's orders, newest first, `limit` (1 to 100) a page; every page can be asked for."""
        try:
            customer = parse_uuid(customer_id, "customer_id")
        except DomainError as error:
            return refused(request, error)
        shown = request.state.access.customer_filter(customer)
        found = await services.read_model.orders(customer_id=shown, first=limit, offset=(page - 1) * limit)
        pagination = m.Pagination(page=page, limit=limit, total=found.total_count or 0,
                                  has_more=found.has_next_page)
        orders = [m.order_out(row) for row in found.rows]
        return answer(request, m.OrdersPage(orders=orders, pagination=pagination))

    @router.get("/orders/{order_id}/payment", responses=documented(200, m.PaymentAnswer))
    async def order_payment(request: Request, order_id: str) -> Response:
        """What the order was charged, and what was given back."""
        try:
            order = await find_order(request, order_id)
        except DomainError as error:
            return refused(request, error, absent=404)
        if order is None:
            return not_found(request, "Order")
        payment = (await services.read_model.payments_by_order([order.id])).get(order.id)
        if payment is None:
            return not_found(request, "Payment")
        return answer(request, m.payment_out(payment, order))

    @router.get("/orders/{order_id}/shipment", responses=documented(200, m.ShipmentAnswer))
    async def order_shipment(request: Request, order_id: str) -> Response:
        """Where the order's parcel is."""
        try:
            order = await find_order(request, order_id)
        except DomainError as error:
            return refused(request, error, absent=404)
        if order is None:
            return not_found(request, "Order")
        shipment = (await services.read_model.shipments_by_order([order.id])).get(order.id)
        if shipment is None:
            return not_found(request, "Shipment")
        return answer(request, m.shipment_out(shipment, order))

    async def find_order(request: Request, order_id: str) -> OrderRow | None:
        key: UUID = parse_uuid(order_id, "order_id")
        return await services.find_order(request.state.access, key)

    return router


def install_rest_errors(api: FastAPI) -> None:
    """In the envelope: FastAPI's refusals under /api/v1 (a bad query parameter), unknown routes anywhere."""

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        if not request.url.path.startswith(PREFIX):
            return await request_validation_exception_handler(request, error)
        first = error.errors()[0]
        location = [part for part in first.get("loc", ()) if part not in ("query", "path", "body")]
        message = str(first.get("msg", "invalid request"))
        return problem_response(request, Problem(BAD_REQUEST, message, field_path(location) or None), 400)

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if "endpoint" not in request.scope:  # no route matched the path
            return problem_response(request, Problem(NOT_FOUND, ROUTE_NOT_FOUND), 404)
        if not request.url.path.startswith(PREFIX):
            return await http_exception_handler(request, error)
        problem = Problem(CODES.get(error.status_code, f"HTTP_{error.status_code}"), str(error.detail))
        return problem_response(request, problem, error.status_code, headers=error.headers)

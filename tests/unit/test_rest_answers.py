"""The REST envelope over rows set by hand: exact money, the old codes, unknown routes, 500s and OpenAPI."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from projections.read_model import PaymentRow
from read_api.app import ApiLimits, create_app
from read_api.errors import Problem
from read_api.rest_envelope import encode, problem_response
from tests.api_harness import RowsReadModel, api_client, order_row

REST_ROUTES = [
    ("post", "/api/v1/orders"), ("get", "/api/v1/orders/{order_id}"),
    ("get", "/api/v1/customers/{customer_id}/orders"), ("get", "/api/v1/orders/{order_id}/payment"),
    ("get", "/api/v1/orders/{order_id}/shipment"),
]
SECRET = "password=hunter2 at 10.0.0.7"


class BrokenPayments(RowsReadModel):
    """A read model whose payments query fails as a database might, with details nobody outside may read."""

    async def payments_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, PaymentRow]:
        raise RuntimeError(SECRET)


@pytest.fixture
def system() -> Iterator[System]:
    with bootstrap(Settings(_env_file=None, database_url="memory://")) as built:
        built.inventory.seed()
        yield built


@pytest.fixture
def read_model() -> BrokenPayments:
    return BrokenPayments()


@pytest.fixture
async def client(system: System, read_model: RowsReadModel) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(system=system, read_model=read_model)) as http:
        yield http


def request() -> Request:
    return Request({"type": "http", "method": "GET", "path": "/api/v1/orders", "headers": []})


def test_money_is_written_as_the_decimal_s_own_digits_never_through_a_float() -> None:
    document = {"price": Decimal("1299.99"), "refunded": Decimal("0.10"), "total": Decimal("0.30"),
                "many": [Decimal("1E+2"), Decimal("-0.00")]}

    assert encode(document) == b'{"price":1299.99,"refunded":0.10,"total":0.30,"many":[1E+2,-0.00]}'
    with pytest.raises(TypeError):
        encode({"amount": Decimal("NaN")})


def test_a_refusal_carries_the_code_of_its_status_with_the_domain_s_code_and_field_beside_it() -> None:
    mismatch = problem_response(request(), Problem("PRICE_MISMATCH", "49.99 expected", "items[0].price"), 400)
    forbidden = problem_response(request(), Problem("FORBIDDEN", "needs the operator scope"), 403)
    bad_page = problem_response(request(), Problem("BAD_REQUEST", "page must be at least 1", "page"), 400)

    assert mismatch.status_code == 400
    assert _json(mismatch.body)["error"] == {
        "code": "BAD_REQUEST", "message": "49.99 expected",
        "details": {"field": "items[0].price", "reason": "PRICE_MISMATCH"},
    }
    assert _json(forbidden.body)["error"] == {"code": "FORBIDDEN", "message": "needs the operator scope",
                                              "details": None}
    assert _json(forbidden.body)["message"] == "needs the operator scope"
    # Both keys of the details, as the OpenAPI document declares them, the one without a value null.
    assert _json(bad_page.body)["error"]["details"] == {"field": "page", "reason": None}


async def test_an_order_answer_writes_its_amounts_exactly(
    client: httpx.AsyncClient, read_model: RowsReadModel
) -> None:
    row = read_model.add_order(order_row())
    response = await client.get(f"/api/v1/orders/{row.id}")

    assert b'"total_amount":49.99' in response.content and b'"price":49.99' in response.content


async def test_an_unexpected_failure_answers_500_with_the_request_id_and_logs_one_traceback(
    client: httpx.AsyncClient, read_model: RowsReadModel, caplog: pytest.LogCaptureFixture
) -> None:
    row = read_model.add_order(order_row())
    with caplog.at_level(logging.INFO):
        response = await client.get(f"/api/v1/orders/{row.id}/payment", headers={"X-Request-ID": "req-500"})

    body = response.json()
    assert response.status_code == 500 and response.headers["x-request-id"] == "req-500"
    assert body["error"]["code"] == "INTERNAL_SERVER_ERROR" and body["request_id"] == "req-500"
    assert body["message"] == body["error"]["message"] and body["success"] is False
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1
    (logged,) = tracebacks
    assert "req-500" in logged.getMessage() and getattr(logged, "request_id", None) == "req-500"
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], RuntimeError)


async def test_a_body_over_the_limit_is_refused_in_the_envelope_with_the_request_id(
    system: System, read_model: RowsReadModel
) -> None:
    app = create_app(system=system, read_model=read_model, limits=ApiLimits(max_body_bytes=1024))
    async with api_client(app) as http:
        response = await http.post("/api/v1/orders", content=b"{" + b" " * 2048 + b"}",
                                   headers={"X-Request-ID": "big-1", "content-type": "application/json"})

    body = response.json()
    assert response.status_code == 413 and body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert body["request_id"] == "big-1" and body["message"] == body["error"]["message"]


async def test_an_error_the_app_has_a_handler_for_is_left_to_that_handler(
    system: System, read_model: BrokenPayments
) -> None:
    async def teapot(request: Request, error: Exception) -> Response:
        return JSONResponse({"handled": str(error)}, status_code=418)

    app = create_app(system=system, read_model=read_model)
    app.add_exception_handler(RuntimeError, teapot)
    row = read_model.add_order(order_row())
    async with api_client(app) as http:
        response = await http.get(f"/api/v1/orders/{row.id}/payment")

    assert (response.status_code, response.json()) == (418, {"handled": SECRET})


@pytest.mark.parametrize("path", ["/api/v1/nope", "/nope", "/api/v2/orders", "/graphql/nope"])
async def test_an_unknown_route_anywhere_answers_route_not_found(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 404
    assert response.json()["success"] is False and response.json()["message"] == "Route not found"
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("path", ["/graphql", "/dashboard", "/healthz", "/readyz", "/metrics", "/docs",
                                  "/openapi.json"])
async def test_the_routes_that_exist_are_not_taken_for_unknown_ones(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, headers={"Accept": "text/html"})

    assert response.status_code == 200, response.text


async def test_fastapi_s_own_refusals_under_the_rest_prefix_are_bad_requests_in_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    customer = uuid4()
    refusals = [await client.get(f"/api/v1/customers/{customer}/orders?{query}")
                for query in ("limit=0", "limit=101", "page=0", "page=first")]
    wrong_method = await client.delete(f"/api/v1/orders/{uuid4()}")

    for response, field in zip(refusals, ("limit", "limit", "page", "page"), strict=True):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BAD_REQUEST"
        assert response.json()["error"]["details"]["field"] == field
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_the_openapi_document_declares_every_answer_of_every_rest_route(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]

    for method, path in REST_ROUTES:
        operation = document["paths"][path][method]
        answers = operation["responses"]
        success = "201" if method == "post" else "200"
        assert {success, "400", "401", "403", "404", "413", "500"} <= set(answers), path
        assert "422" not in answers, path
        for status in ("400", "401", "403", "404", "413", "500"):
            assert _schema_name(answers[status]) == "ErrorAnswer"
        assert _schema_name(answers[success]).endswith("Answer")
    for shape, field in [("OrderOut", "total_amount"), ("OrderItemOut", "price"), ("PaymentOut", "amount"),
                         ("PaymentOut", "refunded_amount")]:
        assert schemas[shape]["properties"][field]["type"] == "number"
    assert set(schemas["OrderOut"]["required"]) >= {"id", "customer_id", "items", "total_amount", "status",
                                                    "shipping_address", "saga_id", "created_at", "updated_at"}
    body = document["paths"]["/api/v1/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["required"]) == {"customer_id", "items", "shipping_address"}
    assert body["properties"]["shipping_address"]["properties"]["zip_code"]["type"] == "string"


def _schema_name(answer: dict[str, Any]) -> str:
    reference: str = answer["content"]["application/json"]["schema"]["$ref"]
    return reference.rsplit("/", 1)[-1]


def _json(body: bytes | memoryview) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(bytes(body))
    return loaded

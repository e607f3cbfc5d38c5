"""The REST routes kept from the old system: their paths, the old envelope, its codes and its answers."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx

from infra.settings import Settings
from projections.order_summary import OrderLine, OrderRecord, OrderSummary
from projections.read_model import AddressRow
from tests.api_harness import serving
from tests.integration.test_graphql_mutations import placed_orders
from tests.saga_harness import ADDRESS, LAPTOP, MOUSE, finished

ENVELOPE = {"success", "message", "data", "error", "timestamp", "request_id"}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CAMEL_CASE = re.compile(r"\b[a-z]+[A-Z]")
"""A name as GraphQL spells it (`productId`), which a client of the old API never sent."""


def body(*lines: tuple[Any, Any], customer_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"customer_id": customer_id or str(uuid4()), "shipping_address": ADDRESS,
            "items": [{"product_id": str(p), "quantity": q} for p, q in lines], **extra}


def exact(response: httpx.Response) -> dict[str, Any]:
    """The answer with its numbers read as the digits written, not as floats."""
    answer: dict[str, Any] = json.loads(response.content, parse_float=Decimal)
    return answer


def refusal(response: httpx.Response) -> tuple[int, str, str | None, str | None]:
    """(status, error code, the field at fault, the domain's own code) of a refusal in the envelope."""
    answer = response.json()
    assert set(answer) == ENVELOPE and answer["success"] is False and answer["data"] is None, answer
    assert answer["error"]["message"] == answer["message"] and answer["request_id"], answer
    details = answer["error"]["details"] or {}
    return response.status_code, answer["error"]["code"], details.get("field"), details.get("reason")


async def test_an_order_placed_over_rest_is_read_back_with_its_payment_and_shipment(
    store_settings: Settings,
) -> None:
    async with serving(store_settings) as served:
        http = served.client
        created = await http.post("/api/v1/orders", json=body((LAPTOP, 1), (MOUSE, 2)),
                                  headers={"X-Request-ID": "req-1"})
        order = exact(created)["data"]
        order_id = UUID(order["id"])
        saga = await finished(served.system, order_id)
        for _ in range(100):
            fetched = exact(await http.get(f"/api/v1/orders/{order_id}"))
            if fetched["data"]["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        payment = await http.get(f"/api/v1/orders/{order_id}/payment")
        shipment = await http.get(f"/api/v1/orders/{order_id}/shipment")
        health = await http.get("/api/v1/health")

    assert created.status_code == 201 and created.headers["x-request-id"] == "req-1"
    assert set(created.json()) == ENVELOPE and created.json()["success"] is True
    assert created.json()["message"] == "Order created successfully"
    assert created.json()["request_id"] == "req-1" and created.json()["error"] is None
    assert order["status"] in ("pending", "processing") and order["total_amount"] == Decimal("1399.97")
    assert order["items"][1] == {"product_id": str(MOUSE), "product_name": "Wireless Mouse", "quantity": 2,
                                 "price": Decimal("49.99")}
    assert order["shipping_address"] == ADDRESS and order["saga_id"] == str(saga.id)
    assert fetched["success"] is True and fetched["data"]["status"] == "completed"
    assert fetched["data"]["failure_reason"] is None and fetched["data"]["saga_id"] == str(saga.id)
    assert payment.status_code == 200
    paid = exact(payment)["data"]
    varying = {"id": "", "transaction_id": "", "created_at": "", "updated_at": "", "processed_at": ""}
    assert paid | varying == varying | {
        "order_id": str(order_id), "customer_id": order["customer_id"], "saga_id": str(saga.id),
        "status": "completed", "amount": Decimal("1399.97"), "currency": "USD",
        "payment_method": "credit_card", "failure_reason": None, "refunded_amount": Decimal("0.00"),
        "refund_reference": None, "refunded_at": None}
    assert paid["transaction_id"] and paid["processed_at"] == paid["created_at"]
    assert shipment.status_code == 200
    shipped = shipment.json()["data"]
    assert (shipped["status"], shipped["order_id"], shipped["customer_id"], shipped["saga_id"]) == (
        "preparing", str(order_id), order["customer_id"], str(saga.id))
    assert shipped["tracking_id"] and shipped["address"] == ADDRESS and shipped["failure_reason"] is None
    assert health.status_code == 200 and health.json()["success"] is True
    assert "projections" in health.json()["data"]


async def test_a_bad_order_is_a_bad_request_naming_the_field_and_nothing_is_written(
    sqlite_settings: Settings,
) -> None:
    async with serving(sqlite_settings, roles=()) as served:
        http = served.client
        zero = await http.post("/api/v1/orders", json=body((MOUSE, 0)))
        mismatch = await http.post("/api/v1/orders", json={
            **body(), "items": [{"product_id": str(MOUSE), "quantity": 1, "price": 9.99}]})
        unknown = await http.post("/api/v1/orders", json=body((uuid4(), 1)))
        no_zip = await http.post("/api/v1/orders", json={
            **body((MOUSE, 1)), "shipping_address": {**ADDRESS, "zip_code": ""}})
        no_customer = await http.post("/api/v1/orders", json={**body((MOUSE, 1)), "customer_id": None})
        no_items = await http.post("/api/v1/orders", json=body())
        not_json = await http.post("/api/v1/orders", content=b"{oops",
                                   headers={"content-type": "application/json"})
        not_a_number = await http.post("/api/v1/orders", content=json.dumps(body((MOUSE, 1))).replace(
            '"quantity": 1', '"quantity": 1, "price": NaN').encode())
        a_list = await http.post("/api/v1/orders", json=[1, 2])
        written = placed_orders(served.system)

    assert refusal(zero) == (400, "BAD_REQUEST", "items[0].quantity", "VALIDATION_ERROR")
    assert refusal(mismatch) == (400, "BAD_REQUEST", "items[0].price", "PRICE_MISMATCH")
    assert refusal(unknown) == (400, "BAD_REQUEST", "items[0].product_id", "UNKNOWN_PRODUCT")
    assert refusal(no_zip) == (400, "BAD_REQUEST", "shipping_address.zip_code", "VALIDATION_ERROR")
    assert refusal(no_customer) == (400, "BAD_REQUEST", "customer_id", "VALIDATION_ERROR")
    assert refusal(no_items) == (400, "BAD_REQUEST", "items", "VALIDATION_ERROR")
    assert refusal(not_json) == (400, "BAD_REQUEST", None, None)
    assert refusal(not_a_number) == (400, "BAD_REQUEST", None, None)
    assert refusal(a_list) == (400, "BAD_REQUEST", None, None)
    assert written == 0


async def test_a_refusal_names_the_field_in_its_message_as_the_old_api_spelled_it(
    sqlite_settings: Settings,
) -> None:
    unknown = uuid4()
    cases = [body((unknown, 1)), body(("not-an-id", 1)), body((MOUSE, 0)),
             {**body((MOUSE, 1)), "shipping_address": {**ADDRESS, "zip_code": ""}}]

    async with serving(sqlite_settings, roles=()) as served:
        errors = [(await served.client.post("/api/v1/orders", json=sent)).json()["error"] for sent in cases]

    fields = [error["details"]["field"] for error in errors]
    assert fields == ["items[0].product_id", "items[0].product_id", "items[0].quantity",
                      "shipping_address.zip_code"]
    assert all(CAMEL_CASE.search(error["message"]) is None for error in errors), errors
    assert str(unknown) in errors[0]["message"]
    assert all(error["message"].startswith(f"{error['details']['field']}: ") for error in errors[1:]), errors


async def test_a_price_sent_as_a_json_number_is_compared_with_the_catalogue_exactly(
    sqlite_settings: Settings,
) -> None:
    async with serving(sqlite_settings, roles=()) as served:
        placed = await served.client.post("/api/v1/orders", content=json.dumps(body((MOUSE, 1))).replace(
            '"quantity": 1', '"quantity": 1, "price": 49.99').encode())

    assert placed.status_code == 201, placed.text
    assert exact(placed)["data"]["items"][0]["price"] == Decimal("49.99")


async def test_what_does_not_exist_is_not_found_in_the_envelope(sqlite_settings: Settings) -> None:
    async with serving(sqlite_settings, roles=()) as served:
        http = served.client
        missing = uuid4()
        order = await http.get(f"/api/v1/orders/{missing}")
        payment = await http.get(f"/api/v1/orders/{missing}/payment")
        shipment = await http.get(f"/api/v1/orders/{missing}/shipment")
        # Placed, but no worker runs: no payment or shipment yet.
        placed = (await http.post("/api/v1/orders", json=body((MOUSE, 1)))).json()["data"]["id"]
        unpaid = await http.get(f"/api/v1/orders/{placed}/payment")
        unshipped = await http.get(f"/api/v1/orders/{placed}/shipment")
        malformed = await http.get("/api/v1/orders/not-an-id")
        no_route = await http.get("/api/v1/nothing-here")

    assert refusal(order) == (404, "NOT_FOUND", None, None) and order.json()["message"] == "Order not found"
    assert refusal(payment) == (404, "NOT_FOUND", None, None)
    assert refusal(shipment) == (404, "NOT_FOUND", None, None)
    assert refusal(unpaid) == (404, "NOT_FOUND", None, None)
    assert unpaid.json()["message"] == "Payment not found"
    assert refusal(unshipped) == (404, "NOT_FOUND", None, None)
    assert refusal(malformed) == (400, "BAD_REQUEST", "order_id", "VALIDATION_ERROR")
    assert refusal(no_route) == (404, "NOT_FOUND", None, None)
    assert no_route.json()["message"] == "Route not found"


async def test_a_customers_orders_come_in_pages_newest_first(sqlite_settings: Settings) -> None:
    customer = str(uuid4())
    async with serving(sqlite_settings, roles=()) as served:
        http = served.client
        placed = []
        for _ in range(5):
            created = await http.post("/api/v1/orders", json=body((MOUSE, 1), customer_id=customer))
            placed.append(created.json()["data"]["id"])
        await http.post("/api/v1/orders", json=body((MOUSE, 1)))  # someone else's
        pages = [(await http.get(f"/api/v1/customers/{customer}/orders?page={n}&limit=2")).json()["data"]
                 for n in (1, 2, 3)]
        default = (await http.get(f"/api/v1/customers/{customer}/orders")).json()["data"]
        zero = await http.get(f"/api/v1/customers/{customer}/orders?limit=0")
        huge = await http.get(f"/api/v1/customers/{customer}/orders?limit=101")
        page_zero = await http.get(f"/api/v1/customers/{customer}/orders?page=0")
        nobody = await http.get("/api/v1/customers/nobody/orders")

    listed = [order["id"] for page in pages for order in page["orders"]]
    assert listed == list(reversed(placed))
    assert [p["pagination"] for p in pages] == [
        {"page": 1, "limit": 2, "total": 5, "has_more": True},
        {"page": 2, "limit": 2, "total": 5, "has_more": True},
        {"page": 3, "limit": 2, "total": 5, "has_more": False}]
    assert default["pagination"]["limit"] == 10 and len(default["orders"]) == 5
    assert refusal(zero) == (400, "BAD_REQUEST", "limit", None)
    assert refusal(huge) == (400, "BAD_REQUEST", "limit", None)
    assert refusal(page_zero) == (400, "BAD_REQUEST", "page", None)
    assert refusal(nobody) == (400, "BAD_REQUEST", "customer_id", "VALIDATION_ERROR")


def stored_order(customer_id: UUID, created_at: datetime) -> OrderRecord:
    return OrderRecord(
        id=uuid4(), customer_id=customer_id, order_status="COMPLETED", saga_started=True,
        total_amount=Decimal("49.99"), currency="USD", lines=(OrderLine(MOUSE, 1, Decimal("49.99")),),
        shipping_address=AddressRow(**ADDRESS), failure_reason=None, created_at=created_at,
        updated_at=created_at, version=2,
    )


async def test_every_page_of_a_customer_with_620_orders_can_be_read(store_settings: Settings) -> None:
    customer = uuid4()
    orders = [stored_order(customer, T0 + timedelta(minutes=n)) for n in range(620)]
    others = [stored_order(uuid4(), T0 + timedelta(minutes=n)) for n in range(30)]
    async with serving(store_settings, roles=()) as served:
        summary = OrderSummary()
        async with served.projector.store.transaction() as tx:
            await summary.save(tx, {record.id: record for record in [*orders, *others]})
        url = f"/api/v1/customers/{customer}/orders"
        sixth, seventh, eighth, far = [exact(await served.client.get(f"{url}?page={n}&limit=100"))["data"]
                                       for n in (6, 7, 8, 10**12)]
        first = exact(await served.client.get(url))["data"]
        beyond = await served.client.get(f"{url}?page={10**12 + 1}")

    newest_first = [str(record.id) for record in reversed(orders)]
    assert [order["id"] for order in sixth["orders"]] == newest_first[500:600]
    assert [order["id"] for order in seventh["orders"]] == newest_first[600:]
    assert sixth["pagination"] == {"page": 6, "limit": 100, "total": 620, "has_more": True}
    assert seventh["pagination"] == {"page": 7, "limit": 100, "total": 620, "has_more": False}
    assert (eighth["orders"], eighth["pagination"]["has_more"]) == ([], False)
    assert (far["orders"], far["pagination"]["total"], far["pagination"]["has_more"]) == ([], 620, False)
    assert refusal(beyond) == (400, "BAD_REQUEST", "page", None)
    assert [order["id"] for order in first["orders"]] == newest_first[:10]
    assert seventh["orders"][-1]["total_amount"] == Decimal("49.99")


async def test_the_same_idempotency_key_header_places_one_order(sqlite_settings: Settings) -> None:
    request = body((MOUSE, 1))
    async with serving(sqlite_settings, roles=()) as served:
        first, again = [await served.client.post("/api/v1/orders", json=request,
                                                 headers={"Idempotency-Key": "abc"}) for _ in range(2)]
        written = placed_orders(served.system)

    assert first.json()["data"]["id"] == again.json()["data"]["id"]
    assert written == 1

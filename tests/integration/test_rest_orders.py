"""The REST routes kept from the old system: their paths, snake_case bodies and the envelope."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import httpx

from infra.settings import Settings
from tests.api_harness import serving
from tests.integration.test_graphql_mutations import placed_orders
from tests.saga_harness import ADDRESS, LAPTOP, MOUSE, finished

ENVELOPE = {"success", "message", "data", "error", "timestamp", "request_id"}


def body(*lines: tuple[Any, Any], customer_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"customer_id": customer_id or str(uuid4()), "shipping_address": ADDRESS,
            "items": [{"product_id": str(p), "quantity": q} for p, q in lines], **extra}


def refusal(response: httpx.Response) -> tuple[int, str, str | None]:
    answer = response.json()
    assert set(answer) == ENVELOPE and answer["success"] is False and answer["data"] is None, answer
    details = answer["error"]["details"]
    return response.status_code, answer["error"]["code"], None if details is None else details["field"]


async def test_an_order_placed_over_rest_is_read_back_with_its_payment_and_shipment(
    store_settings: Settings,
) -> None:
    async with serving(store_settings) as served:
        http = served.client
        created = await http.post("/api/v1/orders", json=body((LAPTOP, 1), (MOUSE, 2)),
                                  headers={"X-Request-ID": "req-1"})
        order = created.json()["data"]
        order_id = UUID(order["id"])
        await finished(served.system, order_id)
        for _ in range(100):
            fetched = (await http.get(f"/api/v1/orders/{order_id}")).json()
            if fetched["data"]["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        payment = await http.get(f"/api/v1/orders/{order_id}/payment")
        shipment = await http.get(f"/api/v1/orders/{order_id}/shipment")
        health = await http.get("/api/v1/health")

    assert created.status_code == 201 and created.headers["x-request-id"] == "req-1"
    assert set(created.json()) == ENVELOPE and created.json()["success"] is True
    assert created.json()["request_id"] == "req-1" and created.json()["error"] is None
    assert order["status"] in ("pending", "processing") and order["total_amount"] == "1399.97"
    assert order["items"][1] == {"product_id": str(MOUSE), "product_name": "Wireless Mouse", "quantity": 2,
                                 "price": "49.99"}
    assert order["shipping_address"] == ADDRESS
    assert fetched["success"] is True and fetched["data"]["status"] == "completed"
    assert payment.status_code == 200
    assert payment.json()["data"] | {"id": "", "transaction_id": "", "updated_at": ""} == {
        "id": "", "order_id": str(order_id), "status": "completed", "amount": "1399.97", "currency": "USD",
        "transaction_id": "", "refunded_amount": "0.00", "updated_at": ""}
    assert shipment.status_code == 200
    assert shipment.json()["data"]["status"] == "preparing" and shipment.json()["data"]["tracking_number"]
    assert health.status_code == 200 and health.json()["success"] is True
    assert "projections" in health.json()["data"]


async def test_a_bad_order_is_refused_with_the_field_in_the_envelope_and_nothing_is_written(
    sqlite_settings: Settings,
) -> None:
    async with serving(sqlite_settings, roles=()) as served:
        http = served.client
        zero = await http.post("/api/v1/orders", json=body((MOUSE, 0)))
        mismatch = await http.post("/api/v1/orders", json={
            **body(), "items": [{"product_id": str(MOUSE), "quantity": 1, "price": "9.99"}]})
        unknown = await http.post("/api/v1/orders", json=body((uuid4(), 1)))
        no_zip = await http.post("/api/v1/orders", json={
            **body((MOUSE, 1)), "shipping_address": {**ADDRESS, "zip_code": ""}})
        not_json = await http.post("/api/v1/orders", content=b"{oops",
                                   headers={"content-type": "application/json"})
        a_list = await http.post("/api/v1/orders", json=[1, 2])
        written = placed_orders(served.system)

    assert refusal(zero) == (400, "VALIDATION_ERROR", "items[0].quantity")
    assert refusal(mismatch) == (400, "PRICE_MISMATCH", "items[0].price")
    assert refusal(unknown) == (400, "UNKNOWN_PRODUCT", "items[0].product_id")
    assert refusal(no_zip) == (400, "VALIDATION_ERROR", "shipping_address.zip_code")
    assert refusal(not_json) == (400, "INVALID_JSON", None)
    assert refusal(a_list) == (400, "VALIDATION_ERROR", None)
    assert written == 0


async def test_what_does_not_exist_is_a_404_in_the_envelope(sqlite_settings: Settings) -> None:
    async with serving(sqlite_settings, roles=()) as served:
        http = served.client
        missing = uuid4()
        order = await http.get(f"/api/v1/orders/{missing}")
        payment = await http.get(f"/api/v1/orders/{missing}/payment")
        shipment = await http.get(f"/api/v1/orders/{missing}/shipment")
        malformed = await http.get("/api/v1/orders/not-an-id")
        no_route = await http.get("/api/v1/nothing-here")

    assert refusal(order) == (404, "ORDER_NOT_FOUND", None)
    assert refusal(payment) == (404, "PAYMENT_NOT_FOUND", None)
    assert refusal(shipment) == (404, "SHIPMENT_NOT_FOUND", None)
    assert refusal(malformed) == (400, "VALIDATION_ERROR", "order_id")
    assert refusal(no_route) == (404, "NOT_FOUND", None)


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
    assert [(p["page"], p["limit"], p["total"], p["total_pages"]) for p in pages] == [
        (1, 2, 5, 3), (2, 2, 5, 3), (3, 2, 5, 3)]
    assert default["limit"] == 10 and len(default["orders"]) == 5
    assert refusal(zero) == (400, "VALIDATION_ERROR", "limit")
    assert refusal(huge) == (400, "VALIDATION_ERROR", "limit")
    assert refusal(page_zero) == (400, "VALIDATION_ERROR", "page")
    assert refusal(nobody) == (400, "VALIDATION_ERROR", "customer_id")


async def test_the_same_idempotency_key_header_places_one_order(sqlite_settings: Settings) -> None:
    request = body((MOUSE, 1))
    async with serving(sqlite_settings, roles=()) as served:
        first, again = [await served.client.post("/api/v1/orders", json=request,
                                                 headers={"Idempotency-Key": "abc"}) for _ in range(2)]
        written = placed_orders(served.system)

    assert first.json()["data"]["id"] == again.json()["data"]["id"]
    assert written == 1

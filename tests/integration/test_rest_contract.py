"""The REST answers decode into the old system's types, field by field and JSON type by JSON type.

The old clients are Go: each answer is unmarshalled into the structs below. A
required field must be there with its JSON type (a string where a float64 is
expected fails the whole answer); an optional one (a pointer or `omitempty`)
may be absent or null; fields the old types do not know are ignored.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx

from infra.settings import Settings
from tests.api_harness import serving
from tests.fakes import FakeCarrier
from tests.saga_harness import ADDRESS, LAPTOP, MOUSE


@dataclass(frozen=True)
class Of:
    """One field of an old type: its JSON type (or the old type it holds), and whether it may be left out."""

    kind: str
    optional: bool = False
    many: bool = False


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ENVELOPE = "Envelope:"
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

OLD_TYPES: dict[str, dict[str, Of]] = {
    "Address": {"street": Of("string"), "city": Of("string"), "state": Of("string"),
                "zip_code": Of("string"), "country": Of("string")},
    "OrderItem": {"product_id": Of("uuid"), "quantity": Of("integer"), "price": Of("float64")},
    "Order": {
        "id": Of("uuid"), "customer_id": Of("uuid"), "items": Of("OrderItem", many=True),
        "total_amount": Of("float64"), "status": Of("string"), "shipping_address": Of("Address"),
        "saga_id": Of("uuid"), "failure_reason": Of("string", optional=True), "created_at": Of("time"),
        "updated_at": Of("time"),
    },
    "Pagination": {"page": Of("integer"), "limit": Of("integer"), "total": Of("integer"),
                   "has_more": Of("bool")},
    "OrdersPage": {"orders": Of("Order", many=True), "pagination": Of("Pagination")},
    "Payment": {
        "id": Of("uuid"), "order_id": Of("uuid"), "customer_id": Of("uuid"), "saga_id": Of("uuid"),
        "amount": Of("float64"), "payment_method": Of("string"), "status": Of("string"),
        "transaction_id": Of("string", optional=True), "external_ref": Of("string", optional=True),
        "failure_reason": Of("string", optional=True), "refunded_amount": Of("float64"),
        "refund_reference": Of("string", optional=True), "created_at": Of("time"), "updated_at": Of("time"),
        "processed_at": Of("time", optional=True), "refunded_at": Of("time", optional=True),
    },
    "Shipment": {
        "id": Of("uuid"), "order_id": Of("uuid"), "customer_id": Of("uuid"), "saga_id": Of("uuid"),
        "status": Of("string"), "tracking_id": Of("string"), "address": Of("Address"),
        "failure_reason": Of("string", optional=True), "created_at": Of("time"), "updated_at": Of("time"),
    },
    "Error": {"code": Of("string"), "message": Of("string"), "details": Of("object", optional=True)},
}


def envelope_of(data: str | None) -> dict[str, Of]:
    """The old API's response wrapper around `data` (None: a refusal, whose data is absent or null)."""
    return {
        "success": Of("bool"), "message": Of("string"), "data": Of(data or "object", optional=data is None),
        "error": Of("Error", optional=data is not None), "timestamp": Of("time"), "request_id": Of("string"),
    }


def mismatches(value: Any, kind: str, path: str = "") -> list[str]:
    """Where `value` would not decode into `kind`; empty when it decodes."""
    checks = {
        "string": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
        "float64": lambda v: isinstance(v, int | Decimal) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "uuid": lambda v: isinstance(v, str) and UUID_TEXT.match(v) is not None,
        "time": lambda v: isinstance(v, str) and RFC3339.match(v) is not None,
        "object": lambda v: isinstance(v, dict),
    }
    if kind in checks:
        return [] if checks[kind](value) else [f"{path or '.'}: {value!r} is not a {kind}"]
    envelope = kind.startswith(ENVELOPE)
    fields = envelope_of(kind.removeprefix(ENVELOPE) or None) if envelope else OLD_TYPES[kind]
    if not isinstance(value, dict):
        return [f"{path or '.'}: {value!r} is not a {kind} object"]
    found: list[str] = []
    for name, of in fields.items():
        where = f"{path}.{name}"
        if value.get(name) is None:
            found += [] if of.optional else [f"{where}: required, missing or null"]
        elif of.many:
            items = value[name]
            found += ([f"{where}: not an array"] if not isinstance(items, list) else
                      [m for n, item in enumerate(items) for m in mismatches(item, of.kind, f"{where}[{n}]")])
        else:
            found += mismatches(value[name], of.kind, where)
    return found


def decoded(response: httpx.Response, data: str | None) -> dict[str, Any]:
    """The answer as the old client reads it (numbers exact), once it is known to decode into the envelope."""
    body: dict[str, Any] = json.loads(response.content, parse_float=Decimal)
    assert mismatches(body, ENVELOPE + (data or "")) == [], response.text
    return body


def order_body(*lines: tuple[UUID, int]) -> dict[str, Any]:
    return {"customer_id": str(uuid4()), "shipping_address": ADDRESS,
            "items": [{"product_id": str(p), "quantity": q} for p, q in lines]}


async def settled(http: httpx.AsyncClient, order_id: str, status: str) -> None:
    for _ in range(200):
        if (await http.get(f"/api/v1/orders/{order_id}")).json()["data"]["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"order {order_id} never became {status}")


def test_the_decoder_refuses_what_the_old_client_would_refuse() -> None:
    item = {"product_id": str(uuid4()), "quantity": 1, "price": Decimal("49.99")}

    assert mismatches(item, "OrderItem") == []
    assert mismatches({**item, "price": "49.99"}, "OrderItem") == [".price: '49.99' is not a float64"]
    assert mismatches({**item, "quantity": 1.5}, "OrderItem") != []
    assert mismatches({"product_id": str(uuid4()), "quantity": 1}, "OrderItem") == [
        ".price: required, missing or null"]
    assert mismatches({"code": "NOT_FOUND", "message": "x", "details": None}, "Error") == []


async def test_a_completed_order_its_payment_shipment_and_page_decode_into_the_old_types(
    store_settings: Settings,
) -> None:
    async with serving(store_settings) as served:
        http = served.client
        created = await http.post("/api/v1/orders", json=order_body((LAPTOP, 1), (MOUSE, 2)))
        order_id = created.json()["data"]["id"]
        await settled(http, order_id, "completed")
        order = await http.get(f"/api/v1/orders/{order_id}")
        payment = await http.get(f"/api/v1/orders/{order_id}/payment")
        shipment = await http.get(f"/api/v1/orders/{order_id}/shipment")
        customer = created.json()["data"]["customer_id"]
        page = await http.get(f"/api/v1/customers/{customer}/orders?page=1&limit=5")

    assert decoded(created, "Order")["data"]["total_amount"] == Decimal("1399.97")
    assert decoded(order, "Order")["data"]["items"][0]["price"] == Decimal("1299.99")
    assert decoded(payment, "Payment")["data"]["amount"] == Decimal("1399.97")
    assert decoded(shipment, "Shipment")["data"]["tracking_id"]
    assert decoded(page, "OrdersPage")["data"]["orders"][0]["id"] == order_id


async def test_a_compensated_order_with_its_refund_and_failed_shipment_decodes_into_the_old_types(
    store_settings: Settings,
) -> None:
    async with serving(store_settings, carrier=FakeCarrier(refuse="no courier")) as served:
        http = served.client
        created = await http.post("/api/v1/orders", json=order_body((MOUSE, 1)))
        order_id = created.json()["data"]["id"]
        await settled(http, order_id, "cancelled")
        order = decoded(await http.get(f"/api/v1/orders/{order_id}"), "Order")["data"]
        payment = decoded(await http.get(f"/api/v1/orders/{order_id}/payment"), "Payment")["data"]
        shipment = decoded(await http.get(f"/api/v1/orders/{order_id}/shipment"), "Shipment")["data"]

    assert order["failure_reason"] and "no courier" in order["failure_reason"]
    assert (payment["status"], payment["refunded_amount"]) == ("refunded", Decimal("49.99"))
    assert payment["refund_reference"] and payment["refunded_at"] >= payment["processed_at"]
    assert (shipment["status"], shipment["failure_reason"], shipment["tracking_id"]) == (
        "failed", "no courier", "")


async def test_every_refusal_decodes_into_the_old_error_envelope(store_settings: Settings) -> None:
    async with serving(store_settings, roles=()) as served:
        http = served.client
        refusals = [
            await http.post("/api/v1/orders", content=b"{oops", headers={"content-type": "application/json"}),
            await http.post("/api/v1/orders", json=order_body()),
            await http.get(f"/api/v1/orders/{uuid4()}"),
            await http.get(f"/api/v1/orders/{uuid4()}/payment"),
            await http.get("/api/v1/customers/nobody/orders"),
            await http.get("/api/v1/no-such-route"),
        ]

    for response in refusals:
        body = decoded(response, None)
        assert body["success"] is False and body["error"]["message"] == body["message"]

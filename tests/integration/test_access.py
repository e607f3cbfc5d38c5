"""Who sees what, against the whole running system in `required` mode, on SQLite and on PostgreSQL.

Customers A and B: A cannot read, follow, cancel or list B's orders by any
GraphQL field or REST route, and every answer about B's order is the answer
about an order that does not exist. A refused request writes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import uuid4

import jwt

from infra.bootstrap import System
from infra.settings import Settings
from read_api.identity import mint_token
from tests.api_harness import Served, graphql, serving
from tests.integration.test_graphql_orders import GRAPHQL_ADDRESS, ORDER
from tests.saga_harness import MOUSE
from tests.tokens import SECRET, admin, bearer, customer, operator, requiring_tokens

PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { id customerId status } errors { code message field } } }"""
CANCEL = """mutation($id: ID!) { cancelOrder(id: $id, reason: "mine now") {
  order { id status } errors { code message field } } }"""
SAGA = "query($id: ID!) { saga(orderId: $id) { status steps { name status } } }"
LIST = """query($customer: ID) { orders(customerId: $customer, first: 50) {
  totalCount edges { node { id customerId } } } }"""
OPERATOR_VIEWS = {
    "events": 'query($id: ID!) { events(streamId: $id) { type } }',
    "orderAt": 'query($id: ID!) { orderAt(id: $id, version: 1) { id } }',
    "deadLetters": "{ deadLetters { id } }",
    "projections": "{ projections { name } }",
}


def written(system: System) -> int:
    """Every event recorded in every store: a refused request leaves this as it was."""
    return sum(app.recorder.max_notification_id() or 0 for app in system.applications)


def masked(answer: Any, *ids: str) -> str:
    """An answer with the ids asked about (and the per-request fields) blanked, to compare two answers."""
    text = json.dumps(answer, sort_keys=True)
    for id_ in ids:
        text = text.replace(id_, "<id>")
    return text


async def place(served: Served, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    order = {"items": [{"productId": str(MOUSE), "quantity": 1}], "shippingAddress": GRAPHQL_ADDRESS,
             **fields}
    answer = await graphql(served.client, PLACE, {"input": order}, headers)
    payload: dict[str, Any] = answer["data"]["placeOrder"]
    return payload


async def until_settled(served: Served, order_id: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 20
    while True:
        order = (await graphql(served.client, ORDER, {"id": order_id}, headers))["data"]["order"]
        if order and order["saga"] and order["saga"]["status"] in ("COMPLETED", "COMPENSATED") \
                and order["payment"] is not None:
            return
        assert time.monotonic() < deadline, order
        await asyncio.sleep(0.05)


@asynccontextmanager
async def shop(store_settings: Settings) -> AsyncIterator[tuple[Served, Settings]]:
    settings = requiring_tokens(store_settings, payment_failure_rate=0.0, shipping_failure_rate=0.0,
                                notification_failure_rate=0.0)
    async with serving(settings) as served:
        yield served, settings


async def test_a_customer_cannot_tell_another_customers_order_from_one_that_does_not_exist(
    store_settings: Settings,
) -> None:
    a, b = uuid4(), uuid4()
    async with shop(store_settings) as (served, settings):
        as_a, as_b, ops = customer(settings, a), customer(settings, b), operator(settings)
        own = (await place(served, as_a))["order"]["id"]
        theirs = (await place(served, as_b))["order"]["id"]
        await until_settled(served, theirs, ops)
        nowhere = str(uuid4())

        for query in (ORDER, SAGA, CANCEL):
            about_b = await graphql(served.client, query, {"id": theirs}, as_a)
            about_nothing = await graphql(served.client, query, {"id": nowhere}, as_a)
            assert masked(about_b, theirs) == masked(about_nothing, nowhere), query
        listed_b = await graphql(served.client, LIST, {"customer": str(b)}, as_a)
        listed_nobody = await graphql(served.client, LIST, {"customer": str(uuid4())}, as_a)
        listed_all = await graphql(served.client, LIST, {"customer": None}, as_a)
        b_still = (await graphql(served.client, ORDER, {"id": theirs}, ops))["data"]["order"]
        seen_by_ops = await graphql(served.client, LIST, {"customer": None}, ops)
        own_by_a = (await graphql(served.client, ORDER, {"id": own}, as_a))["data"]["order"]

    assert listed_b == listed_nobody == {"data": {"orders": {"totalCount": 0, "edges": []}}}
    assert [e["node"]["id"] for e in listed_all["data"]["orders"]["edges"]] == [own]
    assert b_still["status"] == "COMPLETED", "A's cancelOrder of B's order changed nothing"
    assert {e["node"]["id"] for e in seen_by_ops["data"]["orders"]["edges"]} == {own, theirs}
    assert own_by_a["id"] == own


async def test_rest_answers_another_customers_order_as_not_found(store_settings: Settings) -> None:
    a, b = uuid4(), uuid4()
    async with shop(store_settings) as (served, settings):
        as_a = customer(settings, a)
        theirs = (await place(served, customer(settings, b)))["order"]["id"]
        await until_settled(served, theirs, operator(settings))
        nowhere = str(uuid4())
        pairs = [(f"/api/v1/orders/{theirs}{tail}", f"/api/v1/orders/{nowhere}{tail}")
                 for tail in ("", "/payment", "/shipment")]
        pairs.append((f"/api/v1/customers/{b}/orders", f"/api/v1/customers/{uuid4()}/orders"))
        answers = [(await served.client.get(x, headers=as_a), await served.client.get(y, headers=as_a))
                   for x, y in pairs]
        seen_by_b = await served.client.get(f"/api/v1/orders/{theirs}", headers=customer(settings, b))

    for (path, _), (about_b, about_nothing) in zip(pairs, answers, strict=True):
        assert about_b.status_code == about_nothing.status_code, path
        assert _comparable(about_b.json()) == _comparable(about_nothing.json()), path
    assert [x.status_code for x, _ in answers] == [404, 404, 404, 200]
    assert answers[-1][0].json()["data"]["orders"] == []
    assert seen_by_b.status_code == 200


def _comparable(envelope: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in envelope.items() if key not in ("timestamp", "request_id", "message")
            } | {"error": None if envelope["error"] is None else envelope["error"]["code"]}


async def test_a_customer_places_only_its_own_orders_and_a_refused_order_writes_nothing(
    store_settings: Settings,
) -> None:
    a, b = uuid4(), uuid4()
    async with shop(store_settings) as (served, settings):
        before = written(served.system)
        for_b = await place(served, customer(settings, a), customerId=str(b))
        anonymous = await graphql(served.client, PLACE, {"input": {"customerId": str(a), "items": [],
                                                                   "shippingAddress": GRAPHQL_ADDRESS}})
        rest_for_b = await served.client.post("/api/v1/orders", headers=customer(settings, a), json={
            "customer_id": str(b), "items": [{"product_id": str(MOUSE), "quantity": 1}],
            "shipping_address": {"street": "1 Main St", "city": "Springfield", "state": "IL",
                                 "zip_code": "62701", "country": "US"}})
        rest_anonymous = await served.client.post("/api/v1/orders", json={"customer_id": str(a)})
        after = written(served.system)

    assert for_b == {"order": None, "errors": [
        {"code": "FORBIDDEN", "message": "a customer places orders for itself only", "field": "customerId"}]}
    assert anonymous["data"] is None and anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert rest_for_b.status_code == 403 and rest_for_b.json()["error"]["code"] == "FORBIDDEN"
    assert rest_anonymous.status_code == 401 and rest_anonymous.json()["error"]["code"] == "UNAUTHENTICATED"
    assert after == before


async def test_operator_views_need_the_operator_scope_and_admin_mutations_the_admin_scope(
    store_settings: Settings,
) -> None:
    async with shop(store_settings) as (served, settings):
        order_id = (await place(served, customer(settings, uuid4())))["order"]["id"]
        refused = {name: await graphql(served.client, query, {"id": order_id}, customer(settings, uuid4()))
                   for name, query in OPERATOR_VIEWS.items()}
        opened = {name: await graphql(served.client, query, {"id": order_id}, operator(settings))
                  for name, query in OPERATOR_VIEWS.items()}
        restock = 'mutation($id: ID!) { restock(productId: $id, quantity: 1) { errors { code } } }'
        by_operator = await graphql(served.client, restock, {"id": str(MOUSE)}, operator(settings))
        by_admin = await graphql(served.client, restock, {"id": str(MOUSE)}, admin(settings))
        mixed = await graphql(served.client, "{ products { name } projections { name } }",
                              headers=customer(settings, uuid4()))

    for name, answer in refused.items():
        assert answer["data"] is None and answer["errors"][0]["extensions"]["code"] == "FORBIDDEN", name
    for name, answer in opened.items():
        assert "errors" not in answer, (name, answer)
    assert opened["events"]["data"]["events"][0]["type"] == "Order.Placed"
    assert by_operator["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert by_admin["data"]["restock"]["errors"] == []
    assert mixed["data"] is None, "one closed root field refuses the whole operation"


async def test_every_bad_token_is_unauthenticated_on_graphql_and_rest(store_settings: Settings) -> None:
    async with shop(store_settings) as (served, settings):
        good = customer(settings, uuid4())["Authorization"].removeprefix("Bearer ")
        bad = [{}, {"Authorization": "Basic x"}, bearer("not.a.jwt"), bearer(good[:-3] + "abc"),
               customer(settings.model_copy(update={"auth_jwt_secret": "another-secret" * 5}), uuid4())]
        gql = [await graphql(served.client, LIST, {"customer": None}, headers) for headers in bad]
        rest = [await served.client.get(f"/api/v1/orders/{uuid4()}", headers=headers) for headers in bad]
        catalogue = [await graphql(served.client, "{ products { name } }", None, headers) for headers in bad]

    assert all(a["data"] is None and a["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" for a in gql)
    assert all(r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHENTICATED" for r in rest)
    assert all(r.headers["www-authenticate"].startswith("Bearer") for r in rest)
    assert all(len(a["data"]["products"]) == 5 for a in catalogue)


async def test_a_forged_expired_or_misaddressed_token_is_unauthenticated_and_writes_nothing(
    store_settings: Settings,
) -> None:
    issuer, audience = "https://id.example", "shop"
    settings = requiring_tokens(store_settings, auth_jwt_issuer=issuer, auth_jwt_audience=audience)
    a = uuid4()
    claims = {"sub": str(a), "scope": "customer operator admin", "iss": issuer, "aud": audience,
              "exp": int(time.time()) + 3600}

    def sign(changed: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
        return jwt.encode({**claims, **changed}, key, algorithm=algorithm)

    forged = {
        "alg none": _unsigned(claims),
        "another algorithm": sign({}, algorithm="HS512"),
        "wrong secret": sign({}, key="another-secret" * 5),
        "expired": sign({"exp": int(time.time()) - 60}),
        "wrong audience": sign({"aud": "another-api"}),
        "wrong issuer": sign({"iss": "https://evil"}),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, SECRET, algorithm="HS256"),
    }
    restock = 'mutation($id: ID!) { restock(productId: $id, quantity: 1) { errors { code } } }'
    async with serving(settings) as served:
        placed = (await place(served, customer(settings, a)))["order"]["id"]  # the same claims, signed well
        await until_settled(served, placed, operator(settings))  # so that nothing else writes meanwhile
        before = written(served.system)
        answers = {}
        for name, token in forged.items():
            headers = bearer(token)
            answers[name] = [
                await graphql(served.client, PLACE, {"input": {
                    "items": [{"productId": str(MOUSE), "quantity": 1}], "shippingAddress": GRAPHQL_ADDRESS}},
                    headers),
                await graphql(served.client, CANCEL, {"id": placed}, headers),
                await graphql(served.client, restock, {"id": str(MOUSE)}, headers),
            ]
        after = written(served.system)

    for name, refusals in answers.items():
        for answer in refusals:
            assert answer["data"] is None, (name, answer)
            assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", (name, answer)
    assert after == before


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_an_expired_token_is_refused(store_settings: Settings) -> None:
    async with shop(store_settings) as (served, settings):
        stale = mint_token(settings, subject=str(uuid4()), scopes=["customer"], ttl=timedelta(seconds=1))
        await asyncio.sleep(1.1)
        answer = await graphql(served.client, LIST, {"customer": None}, bearer(stale))
    assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "expired" in answer["errors"][0]["message"]



async def test_a_request_over_a_limit_is_refused_with_its_code_and_writes_nothing(
    store_settings: Settings,
) -> None:
    item = '{productId: "' + str(MOUSE) + '", quantity: 1}'
    address = '{street: "1 Main St", city: "Springfield", state: "IL", zipCode: "62701", country: "US"}'
    one = f"placeOrder(input: {{items: [{item}], shippingAddress: {address}}}) {{ order {{ id }} }}"
    over = {
        "TOO_MANY_ALIASES": "mutation { " + " ".join(f"p{n}: {one}" for n in range(16)) + " }",
        "TOO_MANY_TOKENS": "mutation { " + one.replace(item, ", ".join([item] * 700)) + " }",
        "TOO_DEEP": "mutation { " + one.replace("{ id }", "{ saga " * 10 + "}" * 10) + " }",
    }
    async with shop(store_settings) as (served, settings):
        as_a = customer(settings, uuid4())
        before = written(served.system)
        answers = {code: await graphql(served.client, text, None, as_a) for code, text in over.items()}
        body = await served.client.post("/graphql", headers=as_a,
                                        content=b'{"query": "' + b"x" * (2 << 20) + b'"}')
        after_refusals = written(served.system)
        within = await graphql(served.client, f"mutation {{ {one} }}", None, as_a)
        after_one = written(served.system)

    for code, answer in answers.items():
        assert answer["data"] is None and answer["errors"][0]["extensions"]["code"] == code, answer
    assert body.status_code == 413
    assert after_refusals == before
    assert "errors" not in within and after_one > before, "the same mutation within the limits writes"

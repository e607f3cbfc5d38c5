"""`orderUpdated` in `required` mode: who may open a WebSocket, whose orders it follows, how many at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from infra.settings import Settings
from read_api.app import ApiLimits, create_app
from read_api.identity import mint_token
from tests.api_harness import Served, graphql, serving
from tests.integration.test_graphql_orders import GRAPHQL_ADDRESS
from tests.integration.test_graphql_subscriptions import listening
from tests.saga_harness import MOUSE
from tests.tokens import bearer, customer, requiring_tokens

PLACE = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { order { id } errors { code } } }"
FOLLOW = "subscription($id: ID!) { orderUpdated(id: $id) { id status } }"
PROTOCOL = [Subprotocol("graphql-transport-ws")]


async def place(served: Served, headers: dict[str, str]) -> str:
    order = {"items": [{"productId": str(MOUSE), "quantity": 1}], "shippingAddress": GRAPHQL_ADDRESS}
    answer = await graphql(served.client, PLACE, {"input": order}, headers)
    order_id: str = answer["data"]["placeOrder"]["order"]["id"]
    return order_id


@asynccontextmanager
async def socket(url: str, payload: dict[str, Any] | None) -> AsyncIterator[ClientConnection]:
    async with connect(url, subprotocols=PROTOCOL) as ws:
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            init["payload"] = payload
        await ws.send(json.dumps(init))
        yield ws


async def close_code(url: str, payload: dict[str, Any] | None) -> int | None:
    async with socket(url, payload) as ws:
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except ConnectionClosed as closed:
            return None if closed.rcvd is None else closed.rcvd.code
    raise AssertionError(f"the connection was accepted: {message}")


async def subscribe(ws: ClientConnection, id_: str, order_id: str) -> None:
    await ws.send(json.dumps({"id": id_, "type": "subscribe",
                              "payload": {"query": FOLLOW, "variables": {"id": order_id}}}))


async def next_message(ws: ClientConnection, within: float) -> dict[str, Any] | None:
    try:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
    except TimeoutError:
        return None
    return message


@pytest.fixture
def settings(sqlite_settings: Settings) -> Settings:
    return requiring_tokens(sqlite_settings)


async def test_a_websocket_without_a_good_token_is_closed_4401_and_one_that_may_not_subscribe_4403(
    settings: Settings,
) -> None:
    admin_only = bearer(mint_token(settings, subject="root", scopes=["admin"], ttl=timedelta(hours=1)))
    async with serving(settings, roles=()) as served, listening(served.app) as url:
        codes = [await close_code(url, payload) for payload in (
            None, {}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": 42}, admin_only)]
        async with socket(url, customer(settings, uuid4())) as ws:
            accepted = json.loads(await ws.recv())
    assert codes == [4401, 4401, 4401, 4401, 4403]
    assert accepted["type"] == "connection_ack"


async def test_a_customer_follows_its_own_order_and_never_sees_another_customers(settings: Settings) -> None:
    a, b = customer(settings, uuid4()), customer(settings, uuid4())
    async with serving(settings, roles=()) as served, listening(served.app) as url:
        theirs = await place(served, b)
        own = await place(served, a)
        async with socket(url, a) as ws:
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await subscribe(ws, "theirs", theirs)
            await subscribe(ws, "own", own)
            first = await next_message(ws, 5)
            nothing_more = await next_message(ws, 1.0)
        async with socket(url, b) as ws:
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await subscribe(ws, "theirs", theirs)
            by_b = await next_message(ws, 5)

    assert first is not None and first["id"] == "own"
    assert first["payload"]["data"]["orderUpdated"]["id"] == own
    assert nothing_more is None, "B's order pushed nothing to A, as an order that does not exist"
    assert by_b is not None and by_b["payload"]["data"]["orderUpdated"]["id"] == theirs


async def test_subscriptions_are_capped_per_connection_and_per_client(settings: Settings) -> None:
    token = customer(settings, uuid4())
    async with serving(settings, roles=()) as served:
        order_id = await place(served, token)
        app = create_app(system=served.system, read_model=served.projector.read_model(), settings=settings,
                         limits=ApiLimits(subscriptions_per_connection=3, subscriptions_per_client=5))
        async with listening(app) as url, socket(url, token) as first, socket(url, token) as second:
            for ws in (first, second):
                assert json.loads(await ws.recv())["type"] == "connection_ack"
            for n in range(4):
                await subscribe(first, f"a{n}", order_id)
            on_first = await outcomes(first, 4)
            for n in range(3):
                await subscribe(second, f"b{n}", order_id)
            on_second = await outcomes(second, 3)

    assert on_first == {"a0": "PENDING", "a1": "PENDING", "a2": "PENDING", "a3": "TOO_MANY_SUBSCRIPTIONS"}
    # Three held on the first connection and two here make the client's five: the third is refused.
    assert on_second == {"b0": "PENDING", "b1": "PENDING", "b2": "TOO_MANY_SUBSCRIPTIONS"}


async def outcomes(ws: ClientConnection, count: int) -> dict[str, str]:
    """The first answer of `count` subscriptions: the order's status, or the refusal's code."""
    seen: dict[str, str] = {}
    while len(seen) < count:
        message = await next_message(ws, 5)
        assert message is not None, seen
        if message["type"] != "next" or message["id"] in seen:
            continue
        payload = message["payload"]
        errors = payload.get("errors")
        outcome = errors[0]["extensions"]["code"] if errors else payload["data"]["orderUpdated"]["status"]
        seen[message["id"]] = outcome
    return seen

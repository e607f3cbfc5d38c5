"""`orderUpdated` over graphql-transport-ws, served by a real server: every change pushed until the end."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from infra.settings import Settings
from tests.api_harness import data_of, serving
from tests.fakes import FakeGateway
from tests.integration.test_graphql_orders import PLACE, placement
from tests.saga_harness import MOUSE

UPDATES = """
subscription Updates($id: ID!) {
  orderUpdated(id: $id) { id status version payment { status } saga { status currentStep } }
}"""


@asynccontextmanager
async def listening(app: FastAPI) -> AsyncIterator[str]:
    """The app served by uvicorn on a free local port, in this event loop; yields its ws:// address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    serving_task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag to watch, not an event
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await serving_task


def text(frame: str | bytes) -> str:
    """A message as a browser's GraphQL client reads it: only a text frame will do."""
    assert isinstance(frame, str), f"a binary frame: {frame!r}"
    return frame


async def pushes(socket_: ClientConnection, query: str, variables: dict[str, Any]) -> list[dict[str, Any]]:
    """Every `next` payload of one subscription, until the server completes it."""
    await socket_.send(json.dumps({"type": "connection_init"}))
    assert json.loads(text(await socket_.recv()))["type"] == "connection_ack"
    await socket_.send(json.dumps({"id": "1", "type": "subscribe",
                                   "payload": {"query": query, "variables": variables}}))
    received: list[dict[str, Any]] = []
    while True:
        message = json.loads(text(await asyncio.wait_for(socket_.recv(), 20)))
        if message["type"] == "complete":
            return received
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message["payload"]
        received.append(message["payload"]["data"]["orderUpdated"])


async def test_order_updated_pushes_every_change_until_the_order_and_its_saga_end(
    store_settings: Settings,
) -> None:
    slow_gateway = FakeGateway(delay=0.2)  # so that the steps are seen one at a time
    async with serving(store_settings, gateway=slow_gateway) as served, listening(served.app) as url:
        order = (await data_of(served.client, PLACE, placement((MOUSE, 1))))["placeOrder"]["order"]
        async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as socket_:
            assert socket_.subprotocol == "graphql-transport-ws"
            seen = await pushes(socket_, UPDATES, {"id": order["id"]})

    assert len(seen) >= 3
    assert seen[0]["status"] in ("PENDING", "PROCESSING")
    assert seen[-1]["status"] == "COMPLETED" and seen[-1]["saga"]["status"] == "COMPLETED"
    assert seen[-1]["payment"]["status"] == "COMPLETED"
    assert all(update["id"] == order["id"] for update in seen)
    assert "PROCESSING" in [update["status"] for update in seen]
    assert [u["version"] for u in seen] == sorted(u["version"] for u in seen)

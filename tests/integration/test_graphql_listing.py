"""Listing orders through GraphQL over the real read model: pages by cursor, and no query per row."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, cast
from uuid import UUID, uuid4

from commands.orders import PlaceOrder
from infra.settings import Settings
from projections.read_model import ReadModel
from read_api.app import create_app
from tests.api_harness import api_client, data_of, serving
from tests.saga_harness import ADDRESS, MOUSE, finished

LIST = """
query List($customer: ID, $first: Int, $after: String) {
  orders(customerId: $customer, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id status payment { status } shipment { status } saga { status steps { name } } } }
  }
}"""


class CountingReadModel:
    """Passes every query to the real read model and counts them by name."""

    def __init__(self, inner: ReadModel) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        query = getattr(self.inner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return query(*args, **kwargs)

        return counted


async def test_twenty_orders_with_payment_shipment_and_saga_list_in_one_query_per_kind_newest_first(
    sqlite_settings: Settings,
) -> None:
    customer = uuid4()
    async with serving(sqlite_settings) as served:
        system = served.system
        placed: list[UUID] = []
        for _ in range(21):
            command = PlaceOrder(customer_id=customer, items=[{"product_id": MOUSE, "quantity": 1}],
                                 shipping_address=ADDRESS)
            placed.append(await asyncio.to_thread(system.orders.place_order, command))
        await asyncio.gather(*(finished(system, order_id) for order_id in placed))
        await served.projector.catch_up()
        counting = CountingReadModel(served.projector.read_model())
        app = create_app(system=system, read_model=cast(ReadModel, counting), settings=system.settings)
        async with api_client(app) as client:
            first = (await data_of(client, LIST, {"customer": str(customer), "first": 20}))["orders"]
            calls = dict(counting.calls)
            rest = (await data_of(client, LIST, {"customer": str(customer),
                                                 "after": first["pageInfo"]["endCursor"]}))["orders"]
        everyone = (await data_of(served.client, LIST, {"first": 100}))["orders"]

    nodes = [edge["node"] for edge in first["edges"]]
    assert calls == {"orders": 1, "count_orders": 1, "payments_by_order": 1, "shipments_by_order": 1,
                     "sagas_by_order": 1}
    assert all(n["payment"]["status"] == "COMPLETED" and n["shipment"]["status"] == "PREPARING"
               and n["saga"]["status"] == "COMPLETED" and len(n["saga"]["steps"]) == 4 for n in nodes)
    assert first["totalCount"] == 21 and first["pageInfo"]["hasNextPage"] is True
    assert rest["pageInfo"] == {"hasNextPage": False, "endCursor": rest["edges"][-1]["cursor"]}
    listed = [n["id"] for n in nodes] + [edge["node"]["id"] for edge in rest["edges"]]
    assert listed == [str(order_id) for order_id in reversed(placed)]
    assert everyone["totalCount"] == 21

"""The hash chains through GraphQL: `streamIntegrity` and an order's `integrity`, for operators only;
forgetting a customer, which deletes a key and changes no stored byte, breaks none."""

from __future__ import annotations

from uuid import UUID, uuid4

from infra.eventstore.verification import verify
from infra.settings import Settings
from process_managers.saga import OrderFulfillment
from tests.api_harness import data_of, graphql, serving
from tests.integration.test_access import place, shop, until_settled
from tests.integration.test_forgetting import FORGET
from tests.integration.test_forgetting import place as placed
from tests.integration.test_graphql_orders import settled
from tests.integration.test_hash_chain_store import Store
from tests.tokens import customer, operator

INTEGRITY = """query($id: ID!) {
  streamIntegrity(streamId: $id) { streamId verified length headHash brokenAt problem unchained } }"""
ORDER_INTEGRITY = """query($id: ID!) { order(id: $id) { id integrity { kind streamId verified length } } }"""


async def test_an_operator_sees_whether_a_stream_holds_and_where_it_broke(sqlite_settings: Settings) -> None:
    async with shop(sqlite_settings) as (served, settings):
        buyer = uuid4()
        order_id = (await place(served, customer(settings, buyer)))["order"]["id"]
        await until_settled(served, order_id, customer(settings, buyer))
        saga_id = str(OrderFulfillment.create_id(UUID(order_id)))
        intact = await graphql(served.client, INTEGRITY, {"id": saga_id}, operator(settings))
        unknown = await graphql(served.client, INTEGRITY, {"id": str(uuid4())}, operator(settings))
        store = Store(settings, "OrderFulfillment")
        _, state = store.state(UUID(saga_id), 2)
        store.set_state(UUID(saga_id), 2, state + b" ")
        tampered = await graphql(served.client, INTEGRITY, {"id": saga_id}, operator(settings))
        listed = await graphql(served.client, ORDER_INTEGRITY, {"id": order_id}, operator(settings))
        own = await graphql(served.client, ORDER_INTEGRITY, {"id": order_id}, customer(settings, buyer))

    chain = intact["data"]["streamIntegrity"]
    assert chain["verified"] and chain["brokenAt"] is None and chain["streamId"] == saga_id
    assert chain["length"] > 2 and len(chain["headHash"]) == 64 and chain["unchained"] == 0
    assert unknown["data"]["streamIntegrity"] == {
        "streamId": unknown["data"]["streamIntegrity"]["streamId"], "verified": True, "length": 0,
        "headHash": None, "brokenAt": None, "problem": None, "unchained": 0}
    broken = tampered["data"]["streamIntegrity"]
    assert broken["verified"] is False and (broken["brokenAt"], broken["problem"]) == (2, "hash mismatch")
    streams = {s["kind"]: s for s in listed["data"]["order"]["integrity"]}
    assert {"order", "payment", "reservation", "shipment", "notification", "saga"} <= set(streams)
    assert streams["order"]["verified"] and streams["order"]["streamId"] == order_id
    assert streams["saga"]["verified"] is False
    assert own["data"]["order"] == {"id": order_id, "integrity": None}, "a customer sees its order, not this"


async def test_stream_integrity_is_refused_to_a_customer_and_to_anonymous_callers(
    sqlite_settings: Settings,
) -> None:
    async with shop(sqlite_settings) as (served, settings):
        order_id = (await place(served, customer(settings, uuid4())))["order"]["id"]
        by_customer = await graphql(served.client, INTEGRITY, {"id": order_id}, customer(settings, uuid4()))
        anonymous = await graphql(served.client, INTEGRITY, {"id": order_id})
        by_operator = await graphql(served.client, INTEGRITY, {"id": order_id}, operator(settings))

    assert by_customer["data"] is None and by_customer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert anonymous["data"] is None and anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert by_operator["data"]["streamIntegrity"]["verified"] is True


async def test_forgetting_a_customer_breaks_no_chain(sqlite_settings: Settings) -> None:
    async with serving(sqlite_settings) as served:
        order_id, customer_id = await placed(served)
        await settled(served, order_id)
        forgotten = await data_of(served.client, FORGET, {"customer": customer_id})
        chain = await data_of(served.client, INTEGRITY, {"id": order_id})
        every = verify(served.system.applications)

    assert forgotten["forgetCustomer"]["errors"] == []
    assert chain["streamIntegrity"]["verified"] and chain["streamIntegrity"]["length"] >= 3
    assert every.verified and sum(app.unchained_events for app in every.applications) == 0

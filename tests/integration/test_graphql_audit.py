"""Audits through GraphQL: any stream event by event, and an order as it once was, from the event store."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID, uuid4

from domain.payment import Payment
from infra.settings import Settings
from process_managers.saga import OrderFulfillment
from read_api.scalars import serialize_datetime
from tests.api_harness import data_of, serving
from tests.integration.test_graphql_orders import PLACE, placement, settled
from tests.saga_harness import MOUSE

EVENTS = """query($stream: ID!, $from: Int, $to: Int) {
  events(streamId: $stream, fromVersion: $from, toVersion: $to) {
    streamId version type recordedAt correlationId causationId data } }"""
ORDER_AT = """query($id: ID!, $version: Int, $at: DateTime) {
  orderAt(id: $id, version: $version, at: $at) { status version failureReason payment { status } } }"""


async def test_events_read_any_stream_of_an_order_in_order_with_its_causes(sqlite_settings: Settings) -> None:
    async with serving(sqlite_settings) as served:
        order_id = (await data_of(served.client, PLACE, placement((MOUSE, 2))))["placeOrder"]["order"]["id"]
        await settled(served, order_id)
        order = (await data_of(served.client, EVENTS, {"stream": order_id}))["events"]
        payment_stream = str(Payment.create_id(UUID(order_id)))
        payment = (await data_of(served.client, EVENTS, {"stream": payment_stream}))["events"]
        saga_stream = str(OrderFulfillment.create_id(UUID(order_id)))
        saga = (await data_of(served.client, EVENTS, {"stream": saga_stream, "from": 2, "to": 3}))["events"]
        nothing = (await data_of(served.client, EVENTS, {"stream": str(uuid4())}))["events"]

    assert [(e["version"], e["type"]) for e in order] == [(1, "Order.Placed"), (2, "Order.Completed")]
    assert order[0]["data"]["lines"][0]["quantity"] == 2
    assert order[0]["correlationId"] == order_id and order[0]["recordedAt"].endswith("Z")
    assert [e["type"] for e in payment] == ["Payment.Charged"]
    assert payment[0]["correlationId"] == order_id and payment[0]["causationId"]
    assert [e["version"] for e in saga] == [2, 3] and all(e["streamId"] == saga_stream for e in saga)
    assert nothing == []


async def test_order_at_shows_the_order_as_it_stood_at_a_version_or_a_moment(
    sqlite_settings: Settings,
) -> None:
    async with serving(sqlite_settings) as served:
        order_id = (await data_of(served.client, PLACE, placement((MOUSE, 1))))["placeOrder"]["order"]["id"]
        await settled(served, order_id)
        events = (await data_of(served.client, EVENTS, {"stream": order_id}))["events"]
        placed_at, completed_at = (e["recordedAt"] for e in events)
        first = (await data_of(served.client, ORDER_AT, {"id": order_id, "version": 1}))["orderAt"]
        latest = (await data_of(served.client, ORDER_AT, {"id": order_id}))["orderAt"]
        at_placing = (await data_of(served.client, ORDER_AT, {"id": order_id, "at": placed_at}))["orderAt"]
        at_end = (await data_of(served.client, ORDER_AT, {"id": order_id, "at": completed_at}))["orderAt"]
        before = serialize_datetime(_parse(placed_at) - timedelta(seconds=1))
        not_yet = (await data_of(served.client, ORDER_AT, {"id": order_id, "at": before}))["orderAt"]
        unknown = (await data_of(served.client, ORDER_AT, {"id": str(uuid4())}))["orderAt"]

    assert first == {"status": "PENDING", "version": 1, "failureReason": None, "payment": None}
    assert at_placing == first
    assert latest == at_end == {"status": "COMPLETED", "version": 2, "failureReason": None, "payment": None}
    assert not_yet is None and unknown is None


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)

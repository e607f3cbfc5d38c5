"""Admin mutations and operational queries through GraphQL: restock, parked messages, projections."""

from __future__ import annotations

import asyncio

from infra.messaging.bus import EVENTS_EXCHANGE, Outcome
from infra.settings import Settings
from tests.api_harness import ADMIN, data_of, graphql, serving
from tests.saga_harness import KEYBOARD
from tests.tokens import operator, requiring_tokens
from tests.unit.test_in_process_bus import Recorder, envelope, eventually, payments, wait_for_parked

PARKED = """query($queue: String) {
  deadLetters(queue: $queue) { id queue messageType error attempts parkedAt } }"""
REDRIVE = "mutation($id: ID!) { redriveDeadLetter(id: $id) { ok errors { code field } } }"
RESTOCK = """mutation($id: ID!, $n: Int!) { restock(productId: $id, quantity: $n) {
  product { id name onHand reserved available } errors { code field } } }"""
PRODUCT = "query($id: ID!) { product(id: $id) { onHand available } }"


async def test_a_parked_message_is_listed_and_re_driven_only_with_the_admin_token(
    sqlite_settings: Settings,
) -> None:
    settings = requiring_tokens(sqlite_settings)
    healed = False
    handler = Recorder(lambda _: Outcome.done() if healed else Outcome.park("unknown product"))
    async with serving(settings, roles=()) as served:
        await served.bus.subscribe(payments(handler))
        await served.bus.publish(EVENTS_EXCHANGE, [envelope()])
        [letter] = await wait_for_parked(served.bus, "payments", 1)

        ops = operator(settings)
        listed = (await data_of(served.client, PARKED, {"queue": "payments"}, ops))["deadLetters"]
        elsewhere = (await data_of(served.client, PARKED, {"queue": "shipping"}, ops))["deadLetters"]
        refused = await graphql(served.client, REDRIVE, {"id": letter.id}, ops)
        anonymous = await graphql(served.client, PARKED, {"queue": None})
        healed = True
        redriven = await data_of(served.client, REDRIVE, {"id": letter.id}, ADMIN)
        await eventually(lambda: len(handler.done) == 1)
        unknown = await data_of(served.client, REDRIVE, {"id": "payments:nothing"}, ADMIN)
        after = (await data_of(served.client, PARKED, {"queue": None}, ops))["deadLetters"]

    assert [(x["id"], x["queue"], x["messageType"], x["error"], x["attempts"]) for x in listed] == [
        (letter.id, "payments", "PaymentCharged", "unknown product", 1)]
    assert listed[0]["parkedAt"].endswith("Z")
    assert elsewhere == []
    assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert anonymous["data"] is None and anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert redriven["redriveDeadLetter"] == {"ok": True, "errors": []}
    assert unknown["redriveDeadLetter"] == {"ok": False, "errors": [{"code": "NOT_FOUND", "field": "id"}]}
    assert after == []


async def test_restock_adds_units_that_the_catalogue_then_shows(sqlite_settings: Settings) -> None:
    async with serving(sqlite_settings, roles=()) as served:
        before = (await data_of(served.client, PRODUCT, {"id": str(KEYBOARD)}))["product"]
        done = (await data_of(served.client, RESTOCK, {"id": str(KEYBOARD), "n": 7}, ADMIN))["restock"]
        for _ in range(100):
            shown = (await data_of(served.client, PRODUCT, {"id": str(KEYBOARD)}))["product"]
            if shown["onHand"] == before["onHand"] + 7:
                break
            await asyncio.sleep(0.05)
        status = (await data_of(served.client, "{ projections { name position lag failed } }"))["projections"]

    product = {"id": str(KEYBOARD), "name": "Mechanical Keyboard", "onHand": 37, "reserved": 0,
               "available": 37}
    assert done == {"product": product, "errors": []}
    assert shown == {"onHand": 37, "available": 37}
    assert {"order_summary", "stock_levels"} <= {s["name"] for s in status}
    assert all(s["failed"] == 0 for s in status)

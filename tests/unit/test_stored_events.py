"""An event's stored JSON is the JSON of its fields, whichever way the mapper writes it.

With no field to seal and no version to add, the mapper has pydantic write the JSON
at once; otherwise it writes the fields' dict through the transcoder. Both make the
same bytes, which are what every reader, replay and hash chain has read since.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import orjson
import pytest

from domain.order import Order, OrderLine
from domain.stock import Stock
from domain.values import Address, Money
from infra.eventstore.key_tables import MemoryKeyTable
from infra.eventstore.master_key import MasterKey
from infra.eventstore.persistence import OrjsonTranscoder, PydanticMapper
from infra.eventstore.privacy import PersonalDataKeys
from tests.sagas import Order as SagaOrder
from tests.sagas import story

ADDRESS = Address(street="Bahnhofstraße 1 ½", city="Zürich", state="ZH", zip_code="8001", country="CH")


def events() -> list[Any]:
    """Events of every shape the contexts write: money, nested values, times, maps, a command's payload."""
    order = Order.place(uuid4(), uuid4(), [
        OrderLine(product_id=uuid4(), quantity=3, unit_price=Money.of("19.99")),
        OrderLine(product_id=uuid4(), quantity=1, unit_price=Money.of("0.10")),
    ], ADDRESS)
    order.complete()
    stock = Stock.list_product(uuid4(), "Café crème — 250 g", Money.of("7.50"))
    stock.restock(40)
    stock.reserve(uuid4(), 3)
    saga = SagaOrder.new()
    return [*order.collect_events(), *stock.collect_events(), Stock.Snapshot.take(stock),
            *story(saga, *saga.happy_replies(), saga.completed())]


def as_dict_then_json(event: Any) -> bytes:
    return orjson.dumps(event.model_dump(mode="json", exclude={"originator_id", "originator_version"}))


@pytest.mark.parametrize("event", events(), ids=lambda e: type(e).__qualname__)
def test_an_event_with_nothing_to_seal_is_stored_as_the_json_of_its_fields(event: Any) -> None:
    stored = PydanticMapper(transcoder=OrjsonTranscoder()).to_stored_event(event)
    assert stored.state == as_dict_then_json(event)
    assert PydanticMapper(transcoder=OrjsonTranscoder()).to_domain_event(stored) == event


def test_an_event_with_a_field_to_seal_is_sealed_and_the_rest_of_its_json_is_the_same() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    mapper.personal = PersonalDataKeys(MemoryKeyTable(), MasterKey(None))
    placed = next(e for e in events() if isinstance(e, Order.Placed))
    stored = orjson.loads(mapper.to_stored_event(placed).state)
    clear = orjson.loads(as_dict_then_json(placed))
    assert stored["shipping_address"] != clear["shipping_address"]
    assert {k: v for k, v in stored.items() if k != "shipping_address"} == {
        k: v for k, v in clear.items() if k != "shipping_address"}

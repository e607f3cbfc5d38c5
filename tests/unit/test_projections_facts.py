"""Stored events read back as facts: the same whether read from the store or built from the event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import uuid4

import orjson
from eventsourcing.compressor import ZlibCompressor
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from domain.base import Aggregate
from domain.order import Order, OrderLine
from domain.values import Address, Money
from infra.eventstore.persistence import OrjsonTranscoder, PydanticMapper
from projections.facts import decode, fact_of

ADDRESS = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")


class Noted(Aggregate.Event):
    """An event whose class has moved on to a second version since some were stored."""

    class_version: ClassVar[int] = 2
    note: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["note"] = "added by the upcaster"


def stored(mapper: PydanticMapper, event: Any, notification_id: int = 7) -> Notification:
    record = mapper.to_stored_event(event)
    return Notification(id=notification_id, originator_id=record.originator_id,
                        originator_version=record.originator_version, topic=record.topic, state=record.state)


def placed() -> Any:
    line = OrderLine(product_id=uuid4(), quantity=1, unit_price=Money.of("9.99"))
    return Order.place(uuid4(), uuid4(), [line], ADDRESS).collect_events()[0]


def test_a_stored_event_reads_back_as_the_fact_of_the_event() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    event = placed()

    assert decode("Orders", mapper, stored(mapper, event)) == fact_of(event, "Orders", 7)


def test_a_compressed_event_reads_back_the_same() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder(), compressor=ZlibCompressor())
    event = placed()

    assert decode("Orders", mapper, stored(mapper, event)) == fact_of(event, "Orders", 7)


def test_an_event_stored_in_an_older_shape_is_read_in_the_current_one() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    version_one = {"timestamp": datetime.now(UTC).isoformat(), "correlation_id": None, "causation_id": None}
    notification = Notification(id=1, originator_id=uuid4(), originator_version=2, topic=get_topic(Noted),
                                state=orjson.dumps(version_one))

    assert decode("Test", mapper, notification).data["note"] == "added by the upcaster"


def test_an_event_stored_in_the_current_version_is_read_as_it_is() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    event = Noted(originator_id=uuid4(), originator_version=2, timestamp=datetime.now(UTC), note="as written")

    fact = decode("Test", mapper, stored(mapper, event))
    assert fact.data["note"] == "as written"
    assert "class_version" not in fact.data

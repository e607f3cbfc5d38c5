"""Stored events read back as facts: the same whether read from the store or built from the event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

import orjson
from eventsourcing.compressor import ZlibCompressor
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from domain.base import Aggregate
from domain.order import Order, OrderLine
from domain.values import Address, Money
from infra.eventstore.key_tables import MemoryKeyTable
from infra.eventstore.master_key import MasterKey
from infra.eventstore.persistence import OrjsonTranscoder, PydanticMapper
from infra.eventstore.privacy import PersonalDataKeys
from projections import saga_progress
from projections.facts import Fact, decode, fact_of
from tests.sagas import ADDRESS as SAGA_ADDRESS
from tests.sagas import Order as SagaOrder
from tests.sagas import story

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


class CountedKeyTable(MemoryKeyTable):
    """The keys of another table, counting how often a reader asks for some."""

    def __init__(self, kept: MemoryKeyTable) -> None:
        super().__init__()
        self.kept, self.asked = kept, 0

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        self.asked += 1
        return self.kept.get_many(subjects)


def reader_of(table: MemoryKeyTable) -> PydanticMapper:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    mapper.personal = PersonalDataKeys(table, MasterKey(None))
    return mapper


def saga_row(facts: list[Fact]) -> Any:
    row = None
    for fact in facts:
        row = saga_progress.evolve(row, fact)
    return row


def test_a_saga_read_with_its_seals_shut_asks_for_no_key_and_makes_the_row_it_makes_opened() -> None:
    kept = MemoryKeyTable()
    writer = reader_of(kept)
    order = SagaOrder.new()
    records = [writer.to_stored_event(e) for e in story(order, *order.happy_replies(), order.completed())]
    kept.keep(records)
    log = [Notification(id=n, originator_id=r.originator_id, originator_version=r.originator_version,
                        topic=r.topic, state=r.state) for n, r in enumerate(records, 1)]
    opening, shut = CountedKeyTable(kept), CountedKeyTable(kept)

    opened = [decode("OrderFulfillment", reader_of(opening), n) for n in log]
    left_shut = [decode("OrderFulfillment", reader_of(shut), n, opening=False) for n in log]

    clear = SAGA_ADDRESS.model_dump(mode="json")
    assert opened[0].data["shipping_address"] == clear
    assert left_shut[0].data["shipping_address"] != clear
    assert (opening.asked > 0, shut.asked) == (True, 0)
    assert saga_row(left_shut) == saga_row(opened)

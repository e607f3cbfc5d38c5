"""Sealing personal fields: stored encrypted as the event class declares, opened with the key, else erased."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from cryptography.exceptions import InvalidTag
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic
from pydantic import BaseModel

import commands
import domain
import process_managers
from commands.base import ContextApplication
from domain.base import Aggregate
from domain.order import Order
from domain.privacy import ERASED, ERASED_ADDRESS, personal_data_of
from infra.eventstore.key_tables import MemoryKeyTable
from infra.eventstore.master_key import MasterKey
from infra.eventstore.privacy import PersonalDataKeys
from infra.eventstore.sealing import Seal
from process_managers.saga import OrderFulfillment

ADDRESS = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"}
PLACED = get_topic(Order.Placed)


def events_of(aggregate: type[Any]) -> list[type[BaseModel]]:
    return [m for m in vars(aggregate).values() if inspect.isclass(m) and issubclass(m, BaseModel)]


def event_classes() -> list[type[BaseModel]]:
    found = []
    for package in (domain, process_managers):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for member in vars(module).values():
                if inspect.isclass(member) and issubclass(member, Aggregate) and member is not Aggregate:
                    found += events_of(member)
    return found


def placed_state(customer_id: UUID) -> dict[str, Any]:
    return {"customer_id": str(customer_id), "total": {"amount": "9.99"}, "shipping_address": dict(ADDRESS)}


def keys(
    secret: bytes | None = None, table: MemoryKeyTable | None = None, *, cache_seconds: float = 5.0,
) -> PersonalDataKeys:
    return PersonalDataKeys(table or MemoryKeyTable(), MasterKey(secret), cache_seconds=cache_seconds)


def saved(
    personal: PersonalDataKeys, event_class: type[Any], stream: UUID, state: dict[str, Any]
) -> dict[str, Any]:
    """Seal the state, and keep its key as the save's transaction does; the stored state."""
    seal = personal.conceal(event_class, stream, state)
    if seal is not None:
        keep(personal, seal)
    return state


def keep(personal: PersonalDataKeys, seal: Seal) -> None:
    """What the save's transaction does with the seal, and tells the keeper after."""
    assert isinstance(personal.table, MemoryKeyTable)
    try:
        if seal.new:
            personal.table.insert_new({seal.subject: seal.stored})
        else:
            personal.table.check_kept({seal.subject: seal.stored})
    except IntegrityError:
        personal.failed([seal])
        raise
    personal.committed([seal])


def test_every_declared_personal_field_and_subject_is_a_field_of_its_event() -> None:
    declaring = [cls for cls in event_classes() if personal_data_of(cls) is not None]
    assert {cls.__qualname__ for cls in declaring} >= {"Order.Placed", "OrderFulfillment.Started",
                                                        "OrderFulfillment.StepRequested", "Shipment.Created"}
    for cls in declaring:
        declared = personal_data_of(cls)
        assert declared is not None
        for path in (declared.subject, *declared.fields):
            assert path.split(".")[0] in cls.model_fields, f"{cls.__qualname__} has no field {path}"


def test_no_application_snapshots_an_aggregate_whose_events_carry_personal_data() -> None:
    # A snapshot stores the aggregate's state whole, unsealed: such an aggregate must not be snapshotted.
    applications = []
    for package in (commands, process_managers):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            applications += [a for a in vars(module).values()
                             if inspect.isclass(a) and issubclass(a, ContextApplication)]
    for application in applications:
        for aggregate in getattr(application, "snapshotting_intervals", None) or {}:
            carrying = [e for e in events_of(aggregate) if personal_data_of(e)]
            assert not carrying, f"{application.__name__} snapshots {aggregate.__name__}"


def test_a_sealed_address_holds_nothing_in_clear_and_opens_with_its_customer_s_key() -> None:
    personal, customer, stream = keys(), uuid4(), uuid4()

    stored = saved(personal, Order.Placed, stream, placed_state(customer))

    raw = orjson.dumps(stored)
    assert b"Springfield" not in raw and b"1 Main St" not in raw
    assert stored["total"] == {"amount": "9.99"} and stored["customer_id"] == str(customer)  # the rest stays
    assert personal.reveal(PLACED, stream, orjson.loads(raw))["shipping_address"] == ADDRESS


def test_an_event_read_once_its_save_committed_opens_before_the_saving_thread_hears_of_the_commit() -> None:
    # A projector beside the saving role reads the event the moment it commits, with the key still new here.
    table, customer, stream = MemoryKeyTable(), uuid4(), uuid4()
    personal = keys(table=table)
    state = placed_state(customer)
    seal = personal.conceal(Order.Placed, stream, state)
    assert seal is not None and seal.new
    table.insert_new({seal.subject: seal.stored})  # the save's transaction commits; `committed` comes later

    assert personal.reveal(PLACED, stream, orjson.loads(orjson.dumps(state)))["shipping_address"] == ADDRESS


def test_a_rival_s_event_opens_with_the_kept_key_while_a_key_made_here_waits_for_its_save() -> None:
    table, customer, stream = MemoryKeyTable(), uuid4(), uuid4()
    ours, rival = keys(table=table), keys(table=table)
    assert ours.conceal(Order.Placed, uuid4(), placed_state(customer)) is not None  # our save is in flight
    theirs = saved(rival, Order.Placed, stream, placed_state(customer))  # the rival's commits first

    assert ours.reveal(PLACED, stream, orjson.loads(orjson.dumps(theirs)))["shipping_address"] == ADDRESS


def test_a_forgotten_customer_s_address_reads_erased_and_another_s_still_opens() -> None:
    personal, forgotten, kept = keys(), uuid4(), uuid4()
    sealed = {c: orjson.dumps(saved(personal, Order.Placed, c, placed_state(c))) for c in (forgotten, kept)}

    assert personal.forget(forgotten) is True

    erased = personal.reveal(PLACED, forgotten, orjson.loads(sealed[forgotten]))
    assert erased["shipping_address"] == ERASED_ADDRESS
    assert personal.reveal(PLACED, kept, orjson.loads(sealed[kept]))["shipping_address"] == ADDRESS
    assert ERASED_ADDRESS["city"] == ERASED


def test_a_sealed_value_moved_to_another_stream_does_not_open() -> None:
    personal, customer = keys(), uuid4()
    stored = saved(personal, Order.Placed, uuid4(), placed_state(customer))

    with pytest.raises(ValueError, match="does not open"):
        personal.reveal(PLACED, uuid4(), stored)


def test_with_a_master_secret_the_key_table_holds_only_wrapped_keys() -> None:
    table, customer = MemoryKeyTable(), uuid4()
    personal = PersonalDataKeys(table, MasterKey(b"a master secret of the operator's"))
    stored = saved(personal, Order.Placed, customer, placed_state(customer))

    wrapped = table.get_many([customer]).get(customer)
    assert wrapped is not None and len(wrapped) > 32  # nonce, key and tag: not a bare 256-bit key
    with pytest.raises(InvalidTag):
        MasterKey(b"another secret").unwrap(customer, wrapped)
    assert personal.reveal(PLACED, customer, stored)["shipping_address"] == ADDRESS


def test_a_nested_field_is_sealed_only_where_the_event_carries_it() -> None:
    personal, customer, saga = keys(), uuid4(), uuid4()
    payload = {"customer_id": str(customer), "address": ADDRESS}
    ship = {"command": {"type": "CreateShipment", "payload": payload}}
    charge = {"command": {"type": "ChargePayment", "payload": {"customer_id": str(customer), "amount": "1"}}}
    topic = get_topic(OrderFulfillment.StepRequested)

    sealed = saved(personal, OrderFulfillment.StepRequested, saga, ship)
    untouched = saved(personal, OrderFulfillment.StepRequested, saga, dict(charge))

    assert b"Springfield" not in orjson.dumps(sealed)
    assert untouched == charge
    assert personal.reveal(topic, saga, sealed)["command"]["payload"]["address"] == ADDRESS


def test_a_new_key_is_kept_only_by_the_save_that_seals_with_it() -> None:
    table, customer = MemoryKeyTable(), uuid4()
    personal = keys(table=table)

    seal = personal.conceal(Order.Placed, uuid4(), placed_state(customer))

    assert seal is not None and seal.new and seal.subject == customer
    assert table.get_many([customer]) == {}, "nothing is kept before the save's transaction"
    personal.failed([seal])  # that save failed: the key was never kept
    stored = saved(personal, Order.Placed, uuid4(), placed_state(customer))
    assert list(table.get_many([customer])) == [customer]
    assert personal.conceal(Order.Placed, uuid4(), placed_state(customer)) == Seal(
        customer, table.get_many([customer])[customer], new=False)
    assert stored["shipping_address"] != ADDRESS


def test_a_save_with_a_new_key_fails_if_a_rival_kept_one_first_and_the_next_seals_with_the_kept_one() -> None:
    table, customer, stream = MemoryKeyTable(), uuid4(), uuid4()
    ours, rival = keys(table=table), keys(table=table)
    ours_seal = ours.conceal(Order.Placed, stream, placed_state(customer))
    saved(rival, Order.Placed, uuid4(), placed_state(customer))  # the rival's save commits first

    assert ours_seal is not None and ours_seal.new
    with pytest.raises(IntegrityError):
        keep(ours, ours_seal)

    again = saved(ours, Order.Placed, stream, placed_state(customer))  # the command decides again
    assert rival.reveal(PLACED, stream, again)["shipping_address"] == ADDRESS


def test_a_save_sealed_with_a_key_forgotten_elsewhere_fails_and_the_command_decided_again_gets_a_new_key(
) -> None:
    table, customer, stream = MemoryKeyTable(), uuid4(), uuid4()
    here, elsewhere = keys(table=table), keys(table=table)
    before = saved(here, Order.Placed, stream, placed_state(customer))
    assert elsewhere.forget(customer) is True

    later_stream = uuid4()
    with pytest.raises(IntegrityError):  # sealed with the key still at hand here, which is gone
        saved(here, Order.Placed, later_stream, placed_state(customer))
    later = saved(here, Order.Placed, later_stream, placed_state(customer))  # decided again: a new key

    reader = keys(table=table)
    assert reader.reveal(PLACED, later_stream, later)["shipping_address"] == ADDRESS
    assert reader.reveal(PLACED, stream, before)["shipping_address"] == ERASED_ADDRESS  # not by the new key


def test_a_process_with_no_key_at_hand_asks_for_the_one_kept_before_making_one() -> None:
    table, customer, order, saga = MemoryKeyTable(), uuid4(), uuid4(), uuid4()
    upstream, downstream = keys(table=table), keys(table=table)
    placed = saved(upstream, Order.Placed, order, placed_state(customer))
    ship = {"command": {"type": "CreateShipment",
                        "payload": {"customer_id": str(customer), "address": dict(ADDRESS)}}}

    seal = downstream.conceal(OrderFulfillment.StepRequested, saga, ship)

    assert seal is not None and not seal.new, "the key the order was sealed with, not a new one"
    assert upstream.reveal(get_topic(OrderFulfillment.StepRequested), saga, ship)["command"]["payload"][
        "address"] == upstream.reveal(PLACED, order, placed)["shipping_address"] == ADDRESS


def test_where_data_enters_a_new_person_s_key_is_made_without_asking_the_table() -> None:
    class Counting(MemoryKeyTable):
        asked = 0

        def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
            self.asked += 1
            return super().get_many(subjects)

    table, customers = Counting(), [uuid4() for _ in range(3)]
    personal = keys(table=table)

    personal.prepare(customers, asks_first=False)
    for customer in customers:
        saved(personal, Order.Placed, uuid4(), placed_state(customer))

    assert table.asked == 0
    assert set(table.get_many(customers)) == set(customers)


def test_a_long_lived_process_keeps_a_bounded_number_of_keys_at_hand_and_reads_the_rest_again() -> None:
    table = MemoryKeyTable()
    personal = keys(table=table)
    personal.keys_at_hand = 10
    sealed = {customer: saved(personal, Order.Placed, customer, placed_state(customer))
              for customer in [uuid4() for _ in range(25)]}

    assert personal.at_hand <= 10
    opened = [personal.reveal(PLACED, c, dict(state))["shipping_address"] for c, state in sealed.items()]
    assert opened == [ADDRESS] * 25


def test_a_customer_who_keeps_ordering_keeps_their_key_at_hand_while_new_customers_come_and_go() -> None:
    personal = keys()
    personal.keys_at_hand = 10
    regular = uuid4()
    saved(personal, Order.Placed, uuid4(), placed_state(regular))
    for _ in range(30):
        newcomer = uuid4()
        personal.prepare([newcomer], asks_first=False)
        saved(personal, Order.Placed, uuid4(), placed_state(newcomer))
        # Let go, their key would be made anew unasked, and keeping it would fail this save.
        personal.prepare([regular], asks_first=False)
        saved(personal, Order.Placed, uuid4(), placed_state(regular))

    assert personal.at_hand <= 10


class CountingMaster(MasterKey):
    def __init__(self, secret: bytes | None) -> None:
        super().__init__(secret)
        self.unwrapped = 0

    def unwrap(self, subject: UUID, stored: bytes) -> bytes:
        self.unwrapped += 1
        return super().unwrap(subject, stored)


def test_a_reader_reads_a_stale_key_again_but_unwraps_it_again_only_if_it_changed() -> None:
    table, customer, stream = MemoryKeyTable(), uuid4(), uuid4()
    writer = keys(b"secret", table)
    sealed = orjson.dumps(saved(writer, Order.Placed, stream, placed_state(customer)))
    master = CountingMaster(b"secret")
    reader = PersonalDataKeys(table, master, cache_seconds=0)  # every read asks the table again

    for _ in range(3):
        assert reader.reveal(PLACED, stream, orjson.loads(sealed))["shipping_address"] == ADDRESS
    assert master.unwrapped == 1

    writer.forget(customer)
    assert reader.reveal(PLACED, stream, orjson.loads(sealed))["shipping_address"] == ERASED_ADDRESS

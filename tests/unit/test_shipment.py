"""The Shipment aggregate's rules, as given/when/then over its events."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.shipment import (
    CANCELLED_BEFORE_SHIPPING,
    MissingAddressError,
    Shipment,
    ShipmentAlreadyDeliveredError,
    ShipmentAlreadyShippedError,
    ShipmentNotPreparingError,
    ShipmentNotShippedError,
    ShipmentStatus,
)
from domain.values import Address
from tests.dsl import ev, given

ORDER = uuid4()
ADDRESS = Address(
    street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US"
)


def created() -> ev:
    return ev(Shipment.Created, order_id=ORDER, address=ADDRESS, tracking_number="TRK1")


def cancelled(reason: str = "customer cancelled") -> ev:
    return ev(Shipment.Cancelled, order_id=ORDER, reason=reason)


def test_a_shipment_is_created_for_the_address_with_a_tracking_number() -> None:
    outcome = given().when(lambda _: Shipment.create(ORDER, ADDRESS, "TRK000042"))
    outcome.then(
        ev(Shipment.Created, id=Shipment.create_id(ORDER), order_id=ORDER, address=ADDRESS,
           tracking_number="TRK000042")
    )
    assert outcome.result.status is ShipmentStatus.PREPARING


def test_a_shipment_without_an_address_is_refused_naming_the_field() -> None:
    given().when(lambda _: Shipment.create(ORDER, None, "TRK1")).raises(
        MissingAddressError, field="address"
    )


def test_a_carrier_refusal_creates_the_shipment_failed_without_a_created_event() -> None:
    outcome = given().when(lambda _: Shipment.refused(ORDER, "no carrier capacity"))
    outcome.then(ev(Shipment.Failed, order_id=ORDER, reason="no carrier capacity"))
    assert outcome.result.status is ShipmentStatus.FAILED


def test_one_shipment_per_order() -> None:
    assert Shipment.create(ORDER, ADDRESS, "a").id == Shipment.refused(ORDER, "b").id
    assert Shipment.create_id(uuid4()) != Shipment.create_id(ORDER)


def test_a_preparing_shipment_is_dispatched_then_delivered() -> None:
    given(created()).when(lambda s: s.dispatch()).then(ev(Shipment.Dispatched))
    given(created(), ev(Shipment.Dispatched)).when(lambda s: s.deliver()).then(
        ev(Shipment.Delivered)
    )
    delivered = given(created(), ev(Shipment.Dispatched), ev(Shipment.Delivered)).aggregate()
    assert isinstance(delivered, Shipment)
    assert delivered.status is ShipmentStatus.DELIVERED


@pytest.mark.parametrize(
    "history",
    [(created(), ev(Shipment.Dispatched)), (created(), cancelled()), (cancelled(),)],
)
def test_only_a_preparing_shipment_can_be_dispatched(history: tuple[ev, ...]) -> None:
    given(*history).when(lambda s: s.dispatch()).raises(ShipmentNotPreparingError)


@pytest.mark.parametrize(
    "history",
    [(created(),), (created(), ev(Shipment.Dispatched), ev(Shipment.Delivered))],
)
def test_only_a_shipped_shipment_can_be_delivered(history: tuple[ev, ...]) -> None:
    given(*history).when(lambda s: s.deliver()).raises(ShipmentNotShippedError)


def test_a_preparing_shipment_is_cancelled_with_its_reason() -> None:
    outcome = given(created()).when(lambda s: s.cancel("payment refunded"))
    outcome.then(ev(Shipment.Cancelled, order_id=ORDER, reason="payment refunded"))


def test_a_shipped_shipment_cannot_be_cancelled() -> None:
    given(created(), ev(Shipment.Dispatched)).when(lambda s: s.cancel("late")).raises(
        ShipmentAlreadyShippedError
    )


def test_a_delivered_shipment_cannot_be_cancelled() -> None:
    history = (created(), ev(Shipment.Dispatched), ev(Shipment.Delivered))
    given(*history).when(lambda s: s.cancel("late")).raises(ShipmentAlreadyDeliveredError)


def test_cancelling_twice_changes_nothing() -> None:
    given(created(), cancelled()).when(lambda s: s.cancel("again")).then_nothing()


def test_cancelling_a_failed_shipment_changes_nothing() -> None:
    given(ev(Shipment.Failed, order_id=ORDER, reason="x")).when(
        lambda s: s.cancel("compensate")
    ).then_nothing()


def test_a_cancel_before_the_create_is_remembered() -> None:
    outcome = given().when(lambda _: Shipment.cancelled_before_creation(ORDER, "timed out"))
    outcome.then(ev(Shipment.Cancelled, id=Shipment.create_id(ORDER), reason="timed out"))
    assert outcome.result.status is ShipmentStatus.CANCELLED
    assert not outcome.result.was_booked


def test_a_create_after_an_early_cancel_is_recorded_as_failed() -> None:
    outcome = given(cancelled()).when(lambda s: s.refuse_creation())
    outcome.then(ev(Shipment.Failed, order_id=ORDER, reason=CANCELLED_BEFORE_SHIPPING))
    assert outcome.events[0].originator_version == 2


@pytest.mark.parametrize(
    "history",
    [(created(),), (created(), cancelled()), (cancelled(), ev(Shipment.Failed, reason="x",
                                                              order_id=ORDER))],
)
def test_a_further_create_changes_nothing(history: tuple[ev, ...]) -> None:
    given(*history).when(lambda s: s.refuse_creation()).then_nothing()


def test_a_shipment_rebuilt_from_its_events_equals_the_live_one() -> None:
    live = Shipment.cancelled_before_creation(ORDER, "timed out")
    live.refuse_creation()
    rebuilt = None
    for event in list(live.collect_events()):
        rebuilt = event.mutate(rebuilt)
    assert rebuilt == live
    assert isinstance(rebuilt, Shipment)
    assert rebuilt.status is ShipmentStatus.FAILED

"""The shipping context's command handlers, over an in-memory store and a fake carrier."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.command import parse_command
from commands.shipping import (
    CancelShipment,
    CreateShipment,
    DeliverShipment,
    DispatchShipment,
    ShipmentNotFoundError,
    Shipping,
)
from domain.base import ValidationError
from domain.shipment import (
    CANCELLED_BEFORE_SHIPPING,
    MissingAddressError,
    Shipment,
    ShipmentAlreadyShippedError,
    ShipmentStatus,
)
from domain.values import Address
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from tests.dsl import ev, given
from tests.fakes import FakeCarrier

ADDRESS = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701",
           "country": "US"}


@pytest.fixture
def carrier() -> FakeCarrier:
    return FakeCarrier()


@pytest.fixture
def shipping(memory_settings: Settings, carrier: FakeCarrier) -> Iterator[Shipping]:
    app = Shipping(application_env(memory_settings, "Shipping"), carrier=carrier)
    yield app
    app.close()


def create(order_id: UUID | None = None) -> CreateShipment:
    return parse_command(
        CreateShipment, {"order_id": str(order_id or uuid4()), "address": ADDRESS}
    )


def created_shipment(shipping: Shipping) -> UUID:
    command = create()
    shipping.create_shipment(command)
    return command.order_id


def test_a_shipment_is_booked_for_the_orders_address_with_a_tracking_number(
    shipping: Shipping, carrier: FakeCarrier
) -> None:
    command = create()
    outcome = given(app=shipping).when(command)
    outcome.then(
        ev(Shipment.Created, id=Shipment.create_id(command.order_id), order_id=command.order_id,
           address=Address.model_validate(ADDRESS),
           tracking_number=f"TRK{command.order_id.hex[:10].upper()}")
    )
    assert outcome.events[0].correlation_id == command.order_id
    assert carrier.bookings == [(command.order_id, Address.model_validate(ADDRESS))]


def test_a_carrier_refusal_is_recorded_as_a_failed_shipment(memory_settings: Settings) -> None:
    app = Shipping(application_env(memory_settings, "Shipping"),
                   carrier=FakeCarrier(refuse="address not serviceable"))
    command = create()
    given(app=app).when(command).then(
        ev(Shipment.Failed, order_id=command.order_id, reason="address not serviceable")
    )
    assert app.get_shipment(command.order_id).status is ShipmentStatus.FAILED


@pytest.mark.parametrize(
    ("address", "field"),
    [
        (None, "address"),
        ({k: v for k, v in ADDRESS.items() if k != "city"}, "address.city"),
        ({**ADDRESS, "zip_code": "   "}, "address.zip_code"),
    ],
)
def test_a_create_without_a_full_address_is_refused_naming_the_field(
    address: dict[str, str] | None, field: str
) -> None:
    data: dict[str, Any] = {"order_id": str(uuid4())}
    if address is not None:
        data["address"] = address
    with pytest.raises(ValidationError) as raised:
        parse_command(CreateShipment, data)
    assert raised.value.field == field


def test_a_create_that_slipped_past_validation_without_an_address_books_nothing(
    shipping: Shipping, carrier: FakeCarrier
) -> None:
    unchecked: dict[str, Any] = {"order_id": uuid4(), "address": None, "command_id": uuid4()}
    command = CreateShipment.model_construct(**unchecked)
    given(app=shipping).when(command).raises(MissingAddressError, field="address")
    assert carrier.bookings == []


def test_a_redelivered_create_books_once(shipping: Shipping, carrier: FakeCarrier) -> None:
    command = create()
    shipping.create_shipment(command)
    given(app=shipping).when(command).then_nothing()
    given(app=shipping).when(create(command.order_id)).then_nothing()
    assert len(carrier.bookings) == 1


def test_a_cancel_before_the_create_is_remembered_and_the_late_create_fails(
    shipping: Shipping, carrier: FakeCarrier
) -> None:
    order_id = uuid4()
    given(app=shipping).when(CancelShipment(order_id=order_id, reason="step timed out")).then(
        ev(Shipment.Cancelled, id=Shipment.create_id(order_id), reason="step timed out")
    )
    given(app=shipping).when(create(order_id)).then(
        ev(Shipment.Failed, order_id=order_id, reason=CANCELLED_BEFORE_SHIPPING)
    )
    assert carrier.bookings == []


def test_a_preparing_shipment_is_cancelled(shipping: Shipping) -> None:
    order_id = created_shipment(shipping)
    given(app=shipping).when(CancelShipment(order_id=order_id, reason="payment refunded")).then(
        ev(Shipment.Cancelled, order_id=order_id, reason="payment refunded")
    )
    given(app=shipping).when(CancelShipment(order_id=order_id, reason="again")).then_nothing()


def test_a_shipment_is_dispatched_then_delivered(shipping: Shipping) -> None:
    order_id = created_shipment(shipping)
    given(app=shipping).when(DispatchShipment(order_id=order_id)).then(ev(Shipment.Dispatched))
    given(app=shipping).when(DeliverShipment(order_id=order_id)).then(ev(Shipment.Delivered))
    assert shipping.get_shipment(order_id).status is ShipmentStatus.DELIVERED


def test_a_shipped_parcel_cannot_be_cancelled_and_nothing_is_written(shipping: Shipping) -> None:
    order_id = created_shipment(shipping)
    shipping.dispatch_shipment(DispatchShipment(order_id=order_id))
    given(app=shipping).when(CancelShipment(order_id=order_id, reason="late")).raises(
        ShipmentAlreadyShippedError
    )


def test_dispatching_an_unknown_shipment_is_a_named_error(shipping: Shipping) -> None:
    given(app=shipping).when(DispatchShipment(order_id=uuid4())).raises(
        ShipmentNotFoundError, field="order_id"
    )


def test_the_shipment_is_read_by_its_order(shipping: Shipping) -> None:
    order_id = created_shipment(shipping)
    shipment = shipping.get_shipment(order_id)
    assert (shipment.order_id, shipment.status) == (order_id, ShipmentStatus.PREPARING)
    assert shipment.address == Address.model_validate(ADDRESS)
    with pytest.raises(ShipmentNotFoundError):
        shipping.get_shipment(uuid4())

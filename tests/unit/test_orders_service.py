"""The orders context's command handlers, over an in-memory store."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.command import parse_command
from commands.orders import (
    CancelOrder,
    CompleteOrder,
    Orders,
    PlaceOrder,
    PriceMismatchError,
    RequestCancellation,
)
from domain.base import ValidationError
from domain.order import Order, OrderAlreadyCompletedError
from domain.stock import UnknownProductError
from domain.values import Money
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from tests.dsl import ev, given
from tests.fakes import hear_listing

LAPTOP = UUID("550e8400-e29b-41d4-a716-446655440001")
MOUSE = UUID("550e8400-e29b-41d4-a716-446655440002")
PRICES = {LAPTOP: ("Laptop Pro 15", "1299.99"), MOUSE: ("Wireless Mouse", "49.99")}
ADDRESS = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701",
           "country": "US"}


@pytest.fixture
def orders(memory_settings: Settings) -> Iterator[Orders]:
    app = Orders(application_env(memory_settings, "Orders"))
    for product_id, (name, price) in PRICES.items():
        hear_listing(app, product_id, name, price)
    yield app
    app.close()


def place(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "customer_id": str(uuid4()),
        "items": [{"product_id": str(LAPTOP), "quantity": 2}, {"product_id": str(MOUSE), "quantity": 1}],
        "shipping_address": ADDRESS,
    }
    data.update(overrides)
    return data


def test_placing_an_order_prices_it_from_the_catalogue(orders: Orders) -> None:
    command = parse_command(PlaceOrder, place())
    given(app=orders).when(command).then(
        ev(Order.Placed, id=command.order_id, total=Money.of("2649.97"), customer_id=command.customer_id)
    )


def test_every_event_of_a_placement_carries_the_order_as_its_correlation_id(orders: Orders) -> None:
    command = parse_command(PlaceOrder, place())
    outcome = given(app=orders).when(command)
    assert [e.correlation_id for e in outcome.events] == [command.order_id]
    assert outcome.events[0].causation_id == f"command:{command.command_id}"


def test_a_repeated_placement_places_one_order(orders: Orders) -> None:
    command = parse_command(PlaceOrder, place())
    first = orders.place_order(command)
    given(app=orders).when(command).then_nothing()
    assert orders.place_order(command) == first


def test_a_client_price_equal_to_the_catalogue_is_accepted(orders: Orders) -> None:
    command = parse_command(
        PlaceOrder, place(items=[{"product_id": str(MOUSE), "quantity": 1, "price": "49.99"}])
    )
    given(app=orders).when(command).then(ev(Order.Placed, total=Money.of("49.99")))


def test_a_client_price_that_differs_from_the_catalogue_is_refused(orders: Orders) -> None:
    command = parse_command(
        PlaceOrder, place(items=[{"product_id": str(MOUSE), "quantity": 1, "price": "0.01"}])
    )
    given(app=orders).when(command).raises(PriceMismatchError, field="items[0].price")


def test_an_unknown_product_is_refused(orders: Orders) -> None:
    command = parse_command(PlaceOrder, place(items=[{"product_id": str(uuid4()), "quantity": 1}]))
    given(app=orders).when(command).raises(UnknownProductError, field="items[0].product_id")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (place(customer_id="not-a-uuid"), "customer_id"),
        (place(items=[]), "items"),
        (place(items=[{"product_id": str(MOUSE), "quantity": 1}] * 101), "items"),
        (place(items=[{"product_id": str(MOUSE), "quantity": 0}]), "items[0].quantity"),
        (place(items=[{"product_id": str(MOUSE), "quantity": -3}]), "items[0].quantity"),
        (place(items=[{"product_id": str(MOUSE), "quantity": 1001}]), "items[0].quantity"),
        (place(items=[{"product_id": str(MOUSE), "quantity": 1.5}]), "items[0].quantity"),
        (place(items=[{"product_id": "nope", "quantity": 1}]), "items[0].product_id"),
        (place(shipping_address={**ADDRESS, "city": "  "}), "shipping_address.city"),
        (place(shipping_address={k: v for k, v in ADDRESS.items() if k != "zip_code"}),
         "shipping_address.zip_code"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    orders: Orders, data: dict[str, Any], field: str
) -> None:
    before = orders.recorder.max_notification_id()  # the catalogue Orders heard
    with pytest.raises(ValidationError) as raised:
        orders.place_order(parse_command(PlaceOrder, data))
    assert raised.value.field == field
    assert orders.recorder.max_notification_id() == before


def test_a_price_is_never_a_float(orders: Orders) -> None:
    data = place(items=[{"product_id": str(MOUSE), "quantity": 1, "price": Decimal("49.99")}])
    assert parse_command(PlaceOrder, data).items[0].price == Decimal("49.99")


def test_completing_an_order_twice_with_one_command_completes_it_once(orders: Orders) -> None:
    order_id = orders.place_order(parse_command(PlaceOrder, place()))
    command = CompleteOrder(order_id=order_id)
    given(app=orders).when(command).then(ev(Order.Completed, id=order_id))
    given(app=orders).when(command).then_nothing()


def test_a_completed_order_cannot_be_cancelled_and_nothing_is_written(orders: Orders) -> None:
    order_id = orders.place_order(parse_command(PlaceOrder, place()))
    orders.complete_order(CompleteOrder(order_id=order_id))
    given(app=orders).when(CancelOrder(order_id=order_id, reason="late")).raises(
        OrderAlreadyCompletedError
    )


def test_a_customer_may_ask_to_cancel_a_pending_order(orders: Orders) -> None:
    order_id = orders.place_order(parse_command(PlaceOrder, place()))
    given(app=orders).when(RequestCancellation(order_id=order_id, reason="changed my mind")).then(
        ev(Order.CancellationRequested, reason="changed my mind")
    )

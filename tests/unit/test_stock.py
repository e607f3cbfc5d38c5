"""The Stock aggregate's rules, as given/when/then over its events."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given as for_all
from hypothesis import strategies as st

from domain.base import DomainError, ValidationError
from domain.stock import InsufficientStockError, Stock
from domain.values import Money
from infra.eventstore.persistence import OrjsonTranscoder, PydanticMapper
from tests.dsl import ev, given

MOUSE_PRICE = Money.of("49.99")


def listed() -> ev:
    return ev(Stock.Listed, name="Wireless Mouse", price=MOUSE_PRICE)


def restocked(quantity: int) -> ev:
    return ev(Stock.Restocked, quantity=quantity)


def reserved(order_id: UUID, quantity: int) -> ev:
    return ev(Stock.Reserved, order_id=order_id, quantity=quantity)


def stock_after(*history: ev) -> Stock:
    stock = given(*history).aggregate()
    assert isinstance(stock, Stock)
    return stock


def test_listing_a_product_opens_its_stock_under_the_product_id() -> None:
    product_id = uuid4()
    outcome = given().when(lambda _: Stock.list_product(product_id, " Wireless Mouse ", MOUSE_PRICE))
    outcome.then(ev(Stock.Listed, id=product_id, name="Wireless Mouse", price=MOUSE_PRICE))
    assert (outcome.result.on_hand, outcome.result.available) == (0, 0)


@pytest.mark.parametrize(
    ("name", "price", "field"),
    [("  ", MOUSE_PRICE, "name"), ("Mouse", Money.of("0"), "price"), ("Mouse", Money.of("-1"), "price")],
)
def test_a_listing_needs_a_name_and_a_price_above_zero(name: str, price: Money, field: str) -> None:
    given().when(lambda _: Stock.list_product(uuid4(), name, price)).raises(ValidationError, field=field)


def test_restocking_adds_to_what_is_on_hand() -> None:
    given(listed(), restocked(5)).when(lambda stock: stock.restock(7)).then(restocked(7))
    stock = stock_after(listed(), restocked(5), restocked(7))
    assert (stock.on_hand, stock.available) == (12, 12)


@pytest.mark.parametrize("quantity", [1, 100_000])
def test_a_restock_of_one_to_a_hundred_thousand_units_is_accepted(quantity: int) -> None:
    given(listed()).when(lambda stock: stock.restock(quantity)).then(restocked(quantity))


@pytest.mark.parametrize("quantity", [0, -5, 100_001])
def test_a_restock_outside_one_to_a_hundred_thousand_is_refused(quantity: int) -> None:
    given(listed()).when(lambda stock: stock.restock(quantity)).raises(ValidationError, field="quantity")


def test_a_reservation_sets_units_aside_for_an_order() -> None:
    order = uuid4()
    given(listed(), restocked(10)).when(lambda stock: stock.reserve(order, 3)).then(reserved(order, 3))
    stock = stock_after(listed(), restocked(10), reserved(order, 3))
    assert (stock.on_hand, stock.reserved, stock.available) == (10, 3, 7)


def test_every_available_unit_may_be_reserved() -> None:
    order = uuid4()
    given(listed(), restocked(4), reserved(uuid4(), 1)).when(lambda stock: stock.reserve(order, 3)).then(
        reserved(order, 3)
    )


def test_reserving_more_than_is_available_is_refused() -> None:
    given(listed(), restocked(4), reserved(uuid4(), 1)).when(
        lambda stock: stock.reserve(uuid4(), 4)
    ).raises(InsufficientStockError, field="quantity")


def test_reserving_from_a_product_never_restocked_is_refused() -> None:
    given(listed()).when(lambda stock: stock.reserve(uuid4(), 1)).raises(InsufficientStockError)


def test_an_order_that_holds_a_reservation_is_not_reserved_for_again() -> None:
    order = uuid4()
    given(listed(), restocked(10), reserved(order, 3)).when(
        lambda stock: stock.reserve(order, 5)
    ).then_nothing()


def test_a_release_gives_the_order_s_units_back() -> None:
    order = uuid4()
    history = (listed(), restocked(10), reserved(order, 3))
    given(*history).when(lambda stock: stock.release(order)).then(
        ev(Stock.Released, order_id=order, quantity=3)
    )
    stock = stock_after(*history, ev(Stock.Released, order_id=order, quantity=3))
    assert (stock.on_hand, stock.reserved, stock.available) == (10, 0, 10)


def test_releasing_an_order_without_a_reservation_here_changes_nothing() -> None:
    given(listed(), restocked(10), reserved(uuid4(), 3)).when(
        lambda stock: stock.release(uuid4())
    ).then_nothing()


def test_a_sale_takes_the_reserved_units_off_hand() -> None:
    order = uuid4()
    history = (listed(), restocked(10), reserved(order, 3), reserved(uuid4(), 2))
    given(*history).when(lambda stock: stock.sell(order)).then(ev(Stock.Sold, order_id=order, quantity=3))
    stock = stock_after(*history, ev(Stock.Sold, order_id=order, quantity=3))
    assert (stock.on_hand, stock.reserved, stock.available) == (7, 2, 5)
    assert not stock.holds(order)


def test_selling_for_an_order_without_a_reservation_changes_nothing() -> None:
    given(listed(), restocked(10)).when(lambda stock: stock.sell(uuid4())).then_nothing()


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["restock", "reserve", "release", "sell"]),
        st.integers(min_value=0, max_value=4),  # which of five orders
        st.integers(min_value=-2, max_value=30),
    ),
    max_size=40,
)


@for_all(OPERATIONS)
def test_available_stock_never_goes_below_zero_whatever_is_asked(operations: list[Any]) -> None:
    orders = [uuid4() for _ in range(5)]
    stock = Stock.list_product(uuid4(), "Wireless Mouse", MOUSE_PRICE)
    for name, order, quantity in operations:
        try:
            if name == "restock":
                stock.restock(quantity)
            elif name == "reserve":
                stock.reserve(orders[order], quantity)
            else:
                getattr(stock, name)(orders[order])
        except DomainError:
            pass
        assert 0 <= stock.available <= stock.on_hand
        assert stock.reserved == sum(stock.reservations.values()) >= 0
    rebuilt: Any = None
    for event in stock.collect_events():
        rebuilt = event.mutate(rebuilt)
    assert rebuilt == stock


def test_a_stock_loads_back_from_its_snapshot_with_every_type_intact() -> None:
    live = Stock.list_product(uuid4(), "Wireless Mouse", MOUSE_PRICE)
    live.restock(10)
    live.reserve(uuid4(), 3)
    live.collect_events()
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())

    stored = mapper.to_stored_event(Stock.Snapshot.take(live))
    rebuilt = mapper.to_domain_event(stored).mutate(None)

    assert rebuilt == live
    assert (rebuilt.version, rebuilt.available, rebuilt.created_on) == (3, 7, live.created_on)
    assert all(isinstance(order, UUID) for order in rebuilt.reservations)
    assert rebuilt.price == MOUSE_PRICE

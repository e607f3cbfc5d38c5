"""The Reservation aggregate's rules: all lines or none, and a release that came first is remembered."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID, uuid4

from domain.base import ValidationError
from domain.reservation import (
    RejectionCode,
    Reservation,
    ReservationCommittedError,
    ReservationNotHeldError,
    ReservationStatus,
    StockLine,
)
from domain.stock import Stock
from domain.values import Money
from tests.dsl import ev, given


def stock(
    on_hand: int, *, held_by: UUID | None = None, holding: int = 0, name: str = "Wireless Mouse"
) -> Stock:
    product = Stock.list_product(uuid4(), name, Money.of("49.99"))
    if on_hand:
        product.restock(on_hand)
    if held_by is not None:
        product.reserve(held_by, holding)
    product.collect_events()
    return product


def line(product: Stock, quantity: int) -> StockLine:
    return StockLine(product_id=product.id, quantity=quantity)


def by_id(*stocks: Stock) -> dict[UUID, Stock]:
    return {product.id: product for product in stocks}


def reserve_new(order: UUID, lines: list[StockLine], stocks: Mapping[UUID, Stock]) -> Reservation:
    reservation = Reservation(order_id=order)
    reservation.reserve(lines, stocks)
    return reservation


def opened(order: UUID) -> ev:
    return ev(Reservation.Opened, order_id=order)


def reserved(order: UUID, *lines: StockLine) -> ev:
    return ev(Reservation.Reserved, order_id=order, lines=lines)


def test_one_reservation_per_order_however_often_it_is_named() -> None:
    order = uuid4()
    assert Reservation.create_id(order) == Reservation.create_id(order)
    assert Reservation.create_id(order) != Reservation.create_id(uuid4())
    assert Reservation(order_id=order).id == Reservation.create_id(order)


def test_an_order_whose_lines_are_all_available_reserves_every_line() -> None:
    order, mouse, hub = uuid4(), stock(10), stock(5)
    lines = [line(mouse, 2), line(hub, 5)]
    given().when(lambda _: reserve_new(order, lines, by_id(mouse, hub))).then(
        opened(order), reserved(order, *lines)
    )
    assert (mouse.available, hub.available) == (8, 0)
    assert mouse.holds(order) and hub.holds(order)


def test_one_short_line_reserves_nothing_and_says_which_line_was_short() -> None:
    order, mouse, hub = uuid4(), stock(10), stock(1, name="USB-C Hub")
    given().when(lambda _: reserve_new(order, [line(mouse, 2), line(hub, 3)], by_id(mouse, hub))).then(
        opened(order),
        ev(Reservation.Rejected, order_id=order, code=RejectionCode.INSUFFICIENT_STOCK, line=1,
           product_id=hub.id, requested=3, available=1, reason="USB-C Hub: 3 requested, 1 available"),
    )
    assert mouse.pending_events == [] and hub.pending_events == []
    assert (mouse.available, hub.available) == (10, 1)


def test_a_product_may_appear_on_one_line_only() -> None:
    mouse = stock(10)
    given().when(
        lambda _: reserve_new(uuid4(), [line(mouse, 1), line(mouse, 2)], by_id(mouse))
    ).raises(ValidationError, field="lines[1].product_id")
    assert mouse.available == 10


def test_repeating_a_reservation_that_succeeded_changes_nothing() -> None:
    order = uuid4()
    mouse = stock(10, held_by=order, holding=2)
    given(opened(order), reserved(order, line(mouse, 2))).when(
        lambda reservation: reservation.reserve([line(mouse, 2)], by_id(mouse))
    ).then_nothing()
    assert (mouse.available, mouse.pending_events) == (8, [])


def test_repeating_a_rejected_reservation_changes_nothing_even_once_stock_arrives() -> None:
    order, mouse = uuid4(), stock(10)
    rejected = ev(Reservation.Rejected, order_id=order, code=RejectionCode.INSUFFICIENT_STOCK,
                  reason="Wireless Mouse: 12 requested, 0 available")
    given(opened(order), rejected).when(
        lambda reservation: reservation.reserve([line(mouse, 2)], by_id(mouse))
    ).then_nothing()
    assert mouse.available == 10


def test_a_release_that_overtakes_its_reservation_is_remembered() -> None:
    order = uuid4()
    outcome = given().when(lambda _: _released_first(order))
    outcome.then(opened(order), ev(Reservation.ReleasedBeforeReserved, order_id=order))
    assert outcome.result.status is ReservationStatus.RELEASED_BEFORE_RESERVED


def _released_first(order: UUID) -> Reservation:
    reservation = Reservation(order_id=order)
    reservation.release({})
    return reservation


def test_a_reservation_arriving_after_its_release_is_refused_and_takes_no_stock() -> None:
    order, mouse = uuid4(), stock(10)
    given(opened(order), ev(Reservation.ReleasedBeforeReserved, order_id=order)).when(
        lambda reservation: reservation.reserve([line(mouse, 2)], by_id(mouse))
    ).then(ev(Reservation.Rejected, order_id=order, code=RejectionCode.ALREADY_RELEASED, line=None))
    assert mouse.available == 10 and mouse.pending_events == []


def test_the_late_reservation_is_refused_once() -> None:
    order, mouse = uuid4(), stock(10)
    refused = ev(Reservation.Rejected, order_id=order, code=RejectionCode.ALREADY_RELEASED, reason="late")
    given(opened(order), ev(Reservation.ReleasedBeforeReserved, order_id=order), refused).when(
        lambda reservation: reservation.reserve([line(mouse, 2)], by_id(mouse))
    ).then_nothing()


def test_releasing_a_reservation_gives_every_line_back() -> None:
    order = uuid4()
    mouse, hub = stock(10, held_by=order, holding=2), stock(5, held_by=order, holding=5)
    given(opened(order), reserved(order, line(mouse, 2), line(hub, 5))).when(
        lambda reservation: reservation.release(by_id(mouse, hub))
    ).then(ev(Reservation.Released, order_id=order))
    assert (mouse.available, hub.available) == (10, 5)
    assert [type(e) for e in mouse.pending_events] == [Stock.Released]


def test_releasing_twice_releases_once() -> None:
    order = uuid4()
    given(opened(order), reserved(order), ev(Reservation.Released, order_id=order)).when(
        lambda reservation: reservation.release({})
    ).then_nothing()


def test_releasing_a_rejected_reservation_changes_nothing() -> None:
    order = uuid4()
    rejected = ev(Reservation.Rejected, order_id=order, code=RejectionCode.INSUFFICIENT_STOCK, reason="short")
    given(opened(order), rejected).when(lambda reservation: reservation.release({})).then_nothing()


def test_committing_sells_every_reserved_line() -> None:
    order = uuid4()
    mouse, hub = stock(10, held_by=order, holding=2), stock(5, held_by=order, holding=5)
    given(opened(order), reserved(order, line(mouse, 2), line(hub, 5))).when(
        lambda reservation: reservation.commit(by_id(mouse, hub))
    ).then(ev(Reservation.Committed, order_id=order))
    assert (mouse.on_hand, mouse.reserved, hub.on_hand, hub.reserved) == (8, 0, 0, 0)


def test_committing_twice_sells_once() -> None:
    order = uuid4()
    given(opened(order), reserved(order), ev(Reservation.Committed, order_id=order)).when(
        lambda reservation: reservation.commit({})
    ).then_nothing()


def test_a_released_reservation_cannot_be_committed() -> None:
    order = uuid4()
    given(opened(order), reserved(order), ev(Reservation.Released, order_id=order)).when(
        lambda reservation: reservation.commit({})
    ).raises(ReservationNotHeldError, field="order_id")


def test_a_rejected_reservation_cannot_be_committed() -> None:
    order = uuid4()
    rejected = ev(Reservation.Rejected, order_id=order, code=RejectionCode.INSUFFICIENT_STOCK, reason="short")
    given(opened(order), rejected).when(lambda reservation: reservation.commit({})).raises(
        ReservationNotHeldError
    )


def test_sold_stock_cannot_be_released() -> None:
    order = uuid4()
    given(opened(order), reserved(order), ev(Reservation.Committed, order_id=order)).when(
        lambda reservation: reservation.release({})
    ).raises(ReservationCommittedError, field="order_id")

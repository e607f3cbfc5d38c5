"""The Order aggregate's rules, as given/when/then over its events."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.base import ValidationError
from domain.order import (
    Order,
    OrderAlreadyCancelledError,
    OrderAlreadyCompletedError,
    OrderLine,
    OrderStatus,
)
from domain.values import Address, Money
from tests.dsl import ev, given

ADDRESS = Address(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")


def line(quantity: int = 1, price: str = "10.00") -> OrderLine:
    return OrderLine(product_id=uuid4(), quantity=quantity, unit_price=Money.of(price))


def placed(*lines: OrderLine) -> ev:
    chosen = lines or (line(),)
    total = sum((item.subtotal for item in chosen[1:]), chosen[0].subtotal)
    return ev(
        Order.Placed,
        placement_id=uuid4(),
        customer_id=uuid4(),
        lines=tuple(chosen),
        total=total,
        shipping_address=ADDRESS,
    )


def test_placing_an_order_totals_its_lines_at_their_prices() -> None:
    lines = [line(2, "1299.99"), line(1, "49.99")]
    customer = uuid4()
    given().when(lambda _: Order.place(uuid4(), customer, lines, ADDRESS)).then(
        ev(Order.Placed, customer_id=customer, total=Money.of("2649.97"), lines=tuple(lines))
    )


def test_placing_the_same_request_twice_names_the_same_order() -> None:
    placement = uuid4()
    first = Order.place(placement, uuid4(), [line()], ADDRESS)
    second = Order.place(placement, uuid4(), [line()], ADDRESS)
    assert first.id == second.id


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "items"),
        ([line() for _ in range(101)], "items"),
    ],
)
def test_an_order_needs_between_one_and_a_hundred_lines(lines: list[OrderLine], field: str) -> None:
    given().when(lambda _: Order.place(uuid4(), uuid4(), lines, ADDRESS)).raises(
        ValidationError, field=field
    )


def test_a_product_may_appear_on_one_line_only() -> None:
    twice = line()
    given().when(lambda _: Order.place(uuid4(), uuid4(), [line(), twice, twice], ADDRESS)).raises(
        ValidationError, field="items[2].product_id"
    )


def test_a_placed_order_is_pending() -> None:
    order = given(placed()).aggregate()
    assert isinstance(order, Order)
    assert order.status is OrderStatus.PENDING


def test_a_pending_order_completes() -> None:
    given(placed()).when(lambda order: order.complete()).then(ev(Order.Completed))


def test_completing_twice_records_one_completion() -> None:
    given(placed(), ev(Order.Completed)).when(lambda order: order.complete()).then_nothing()


def test_a_completed_order_cannot_be_cancelled() -> None:
    given(placed(), ev(Order.Completed)).when(lambda order: order.cancel("too late")).raises(
        OrderAlreadyCompletedError
    )


def test_a_completed_order_refuses_a_cancellation_request() -> None:
    given(placed(), ev(Order.Completed)).when(
        lambda order: order.request_cancellation("changed my mind")
    ).raises(OrderAlreadyCompletedError)


def test_a_cancelled_order_cannot_complete() -> None:
    given(placed(), ev(Order.Cancelled, reason="payment declined")).when(
        lambda order: order.complete()
    ).raises(OrderAlreadyCancelledError)


def test_a_cancellation_request_is_recorded_once() -> None:
    given(placed(), ev(Order.CancellationRequested, reason="changed my mind")).when(
        lambda order: order.request_cancellation("again")
    ).then_nothing()


def test_cancelling_records_the_reason() -> None:
    scenario = given(placed()).when(lambda order: order.cancel("payment declined"))
    scenario.then(ev(Order.Cancelled, reason="payment declined"))


def test_cancelling_a_cancelled_order_changes_nothing() -> None:
    given(placed(), ev(Order.Cancelled, reason="x")).when(lambda o: o.cancel("y")).then_nothing()


def test_an_order_rebuilt_from_its_events_equals_the_live_one() -> None:
    live = Order.place(uuid4(), uuid4(), [line(3, "79.99")], ADDRESS)
    live.request_cancellation("changed my mind")
    live.cancel("changed my mind")
    events = live.collect_events()
    rebuilt = None
    for event in events:
        rebuilt = event.mutate(rebuilt)
    assert rebuilt == live

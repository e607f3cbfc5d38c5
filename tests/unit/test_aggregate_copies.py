"""The copy a command works on never changes the cached aggregate it came from.

Commands take a deep copy of a cached aggregate (the repository's
DEEPCOPY_FROM_AGGREGATE_CACHE); the aggregates copy themselves cheaply, one level
deep. If a command's change leaked into the cached original, a refused or
failed save would leave the cache believing something the store never recorded.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any
from uuid import uuid4

from domain.base import Aggregate
from domain.order import Order, OrderLine, OrderStatus
from domain.reservation import Reservation, StockLine
from domain.stock import Stock
from domain.values import Money
from process_managers.steps import StepName
from tests.sagas import ADDRESS, T0, TIMEOUT, saga_after
from tests.sagas import Order as SagaOrder


def state(aggregate: Aggregate) -> dict[str, Any]:
    return {name: by_value(value) for name, value in vars(aggregate).items()}


def by_value(value: Any) -> Any:
    # A snapshot of containers by value, so a later in-place change shows.
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list | set):
        return list(value)
    return value


def test_reserving_on_a_copy_leaves_the_cached_stock_as_it_was() -> None:
    stock = Stock.list_product(uuid4(), "Wireless Mouse", Money.of("49.99"))
    stock.restock(10)
    stock.reserve(uuid4(), 2)
    list(stock.collect_events())
    before = state(stock)

    copy = deepcopy(stock)
    copy.reserve(uuid4(), 3)
    copy.release(next(iter(stock.reservations)))

    assert state(stock) == before
    assert stock.pending_events == []
    assert (copy.reserved, stock.reserved) == (3, 2)
    assert copy.id == stock.id and copy.version == stock.version + 2


def test_a_saga_copy_moves_on_alone() -> None:
    order = SagaOrder.new()
    saga = saga_after(order, order.charged())
    list(saga.collect_events())
    before = state(saga)

    copy = deepcopy(saga)
    copy.on(order.reserved(), now=T0, step_timeout=TIMEOUT)

    assert state(saga) == before
    assert saga.pending_events == []
    assert copy.state.step(StepName.INVENTORY) != saga.state.step(StepName.INVENTORY)


def test_an_order_and_a_reservation_copy_keep_their_own_changes() -> None:
    line = OrderLine(product_id=uuid4(), quantity=1, unit_price=Money.of("49.99"))
    order = Order.place(uuid4(), uuid4(), [line], ADDRESS)
    stock = Stock.list_product(line.product_id, "Wireless Mouse", Money.of("49.99"))
    stock.restock(5)
    reservation = Reservation(order_id=order.id)
    reservation.reserve([StockLine(product_id=line.product_id, quantity=1)], {stock.id: stock})
    for aggregate in (order, stock, reservation):
        list(aggregate.collect_events())
    before = [state(order), state(stock), state(reservation)]

    order_copy, stock_copy, reservation_copy = deepcopy(order), deepcopy(stock), deepcopy(reservation)
    order_copy.cancel("changed my mind")
    reservation_copy.release({stock.id: stock_copy})

    assert [state(order), state(stock), state(reservation)] == before
    assert (order_copy.status, order.status) == (OrderStatus.CANCELLED, OrderStatus.PENDING)
    assert (stock_copy.reserved, stock.reserved) == (0, 1)
    assert reservation_copy.status != reservation.status

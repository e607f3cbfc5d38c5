"""Hundreds of orders with the default failure rates: every saga ends, money and stock add up."""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal
from uuid import UUID

from commands.inventory import SEED_CATALOGUE, Restock
from commands.payments import PaymentNotFoundError
from domain.order import OrderStatus
from domain.payment import Payment, PaymentStatus
from infra.bootstrap import System
from infra.eventstore.verification import verify
from infra.settings import Settings
from process_managers.state import SagaStatus
from tests.saga_harness import FINISHED, place, running

ORDERS = 500
TOP_UP = 10_000


def place_many(system: System, count: int, seed: int) -> list[UUID]:
    rng = random.Random(seed)
    products = [p.product_id for p in SEED_CATALOGUE]
    return [
        place(system, *[(p, rng.randint(1, 3)) for p in rng.sample(products, rng.randint(1, 2))])
        for _ in range(count)
    ]


async def all_finished(system: System, order_ids: list[UUID], within: float = 240.0) -> None:
    deadline = time.monotonic() + within
    waiting = set(order_ids)
    while waiting and time.monotonic() < deadline:
        for order_id in list(waiting):
            saga = await asyncio.to_thread(system.sagas.find_saga, order_id)
            if saga is not None and saga.status in FINISHED:
                waiting.discard(order_id)
        await asyncio.sleep(0.2)
    assert not waiting, f"{len(waiting)} sagas never finished"


def assert_money_and_stock_conserved(system: System, order_ids: list[UUID]) -> None:
    completed_total, charged, refunded = Decimal(0), Decimal(0), Decimal(0)
    for order_id in order_ids:
        order = system.orders.get_order(order_id)
        assert order.status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED)
        if order.status is OrderStatus.COMPLETED:
            completed_total += order.total.amount
        payment = _payment(system, order_id)
        if payment is not None and payment.status in (PaymentStatus.COMPLETED, PaymentStatus.REFUNDED):
            assert payment.amount is not None and payment.refunded is not None
            charged += payment.amount.amount
            refunded += payment.refunded.amount
    assert charged - refunded == completed_total

    sold = {p.product_id: 0 for p in SEED_CATALOGUE}
    for order_id in order_ids:
        order = system.orders.get_order(order_id)
        if order.status is OrderStatus.COMPLETED:
            for line in order.lines:
                sold[line.product_id] += line.quantity
    for product in SEED_CATALOGUE:
        stock = system.inventory.get_stock(product.product_id)
        assert stock.reserved == 0, f"{stock.name} still holds reservations at rest"
        assert stock.on_hand == product.stock + TOP_UP - sold[product.product_id]


def _payment(system: System, order_id: UUID) -> Payment | None:
    try:
        return system.payments.get_payment(order_id)
    except PaymentNotFoundError:
        return None


async def test_five_hundred_orders_with_default_failure_rates_all_end_and_conserve_money_and_stock(
    sqlite_settings: Settings,
) -> None:
    settings = sqlite_settings.model_copy(update={"failure_seed": 7})
    # None leaves the simulated gateway, carrier and notifier of the settings in place.
    async with running(settings, gateway=None, carrier=None, notifier=None) as system:
        for product in SEED_CATALOGUE:
            system.inventory.restock(Restock(product_id=product.product_id, quantity=TOP_UP))
        order_ids = await asyncio.to_thread(place_many, system, ORDERS, 7)
        await all_finished(system, order_ids)

        outcomes = {system.sagas.get_saga(o).status for o in order_ids}
        assert outcomes == {SagaStatus.COMPLETED, SagaStatus.COMPENSATED}
        assert_money_and_stock_conserved(system, order_ids)
        chains = verify(system.applications)
        assert chains.verified and chains.events > 0
        assert sum(app.unchained_events for app in chains.applications) == 0

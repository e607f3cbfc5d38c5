"""The checks of each run, read from the stores afterwards: every saga terminal once and its order ended to
match, stock moved by what completed orders bought, money kept equal to their totals; and the facts the
figures are made of (latency, outcomes, events appended)."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.utils import get_topic

from bench.throughput.load import PAGE, SAGA_TERMINAL_TOPICS
from commands.base import ContextApplication
from commands.inventory import SEED_CATALOGUE
from commands.orders import PlaceOrder
from domain.order import Order
from domain.payment import Payment
from infra.bootstrap import System
from process_managers.saga import OrderFulfillment

ORDER_TOPICS = [get_topic(Order.Placed), get_topic(Order.Completed), get_topic(Order.Cancelled)]
PAYMENT_TOPICS = [get_topic(Payment.Charged), get_topic(Payment.Refunded)]
SAGA_END_OF_ORDER = {"completed": "completed", "compensated": "cancelled"}


def read_log(app: ContextApplication, topics: Sequence[str], after: int = 0) -> Iterator[Any]:
    position = after
    while True:
        page = app.recorder.select_notifications(position, PAGE, topics=topics, inclusive_of_start=False)
        for notification in page:
            yield app.mapper.to_domain_event(notification)
        if len(page) < PAGE:
            return
        position = page[-1].id


@dataclass
class Before:
    on_hand: dict[uuid.UUID, int]
    positions: dict[str, int]


def before_run(system: System) -> Before:
    return Before(
        on_hand={p.product_id: system.inventory.get_stock(p.product_id).on_hand for p in SEED_CATALOGUE},
        positions={app.name: app.recorder.max_notification_id() or 0 for app in system},
    )


@dataclass
class Orders:
    """What the order log says of the run's orders."""

    placed_at: dict[uuid.UUID, datetime]
    total: dict[uuid.UUID, Decimal]
    lines: dict[uuid.UUID, list[tuple[uuid.UUID, int]]]
    end: dict[uuid.UUID, list[str]]


@dataclass
class Sagas:
    """What the saga log says: when and how each order's saga ended, and why the compensated ones did."""

    done_at: dict[uuid.UUID, datetime]
    end: dict[uuid.UUID, list[str]]
    reasons: Counter[str]


def verify(
    system: System, commands: Sequence[PlaceOrder], before: Before
) -> tuple[list[str], dict[str, Any]]:
    """Check the end state from the stores; return (failures, facts)."""
    fails: list[str] = []
    order_ids = {c.order_id for c in commands}
    orders = read_orders(system, before)
    sagas = read_sagas(system, before, order_ids, fails)
    completed = check_ends(order_ids, orders, sagas, fails)
    money = check_money(system, before, order_ids, orders, completed, fails)
    stock = check_stock(system, before, orders, completed, fails)
    done_at, placed_at = sagas.done_at, orders.placed_at
    latency = {o: (done_at[o] - placed_at[o]).total_seconds() * 1000 for o in done_at if o in placed_at}
    appended = {
        app.name: (app.recorder.max_notification_id() or 0) - before.positions[app.name] for app in system
    }
    facts = {
        "latency": latency,
        "completed": completed,
        "outcomes": {"completed": len(completed), "compensated": dict(sorted(sagas.reasons.items()))},
        "money": money,
        "stock": stock,
        "events_appended": appended,
        "first_placed_at": min(placed_at.values()) if placed_at else None,
        "last_terminal_at": max(done_at.values()) if done_at else None,
    }
    return fails, facts


def read_orders(system: System, before: Before) -> Orders:
    orders = Orders({}, {}, {}, defaultdict(list))
    for event in read_log(system.orders, ORDER_TOPICS, before.positions[system.orders.name]):
        oid = event.originator_id
        if isinstance(event, Order.Placed):
            orders.placed_at[oid], orders.total[oid] = event.timestamp, event.total.amount
            orders.lines[oid] = [(line.product_id, line.quantity) for line in event.lines]
        else:
            orders.end[oid].append("completed" if isinstance(event, Order.Completed) else "cancelled")
    return orders


def read_sagas(system: System, before: Before, order_ids: set[uuid.UUID], fails: list[str]) -> Sagas:
    saga_to_order = {OrderFulfillment.create_id(o): o for o in order_ids}
    sagas = Sagas({}, defaultdict(list), Counter())
    for event in read_log(system.sagas, SAGA_TERMINAL_TOPICS, before.positions[system.sagas.name]):
        oid = saga_to_order.get(event.originator_id)
        if oid is None:
            fails.append(f"a terminal saga {event.originator_id} for no order of this run")
            continue
        sagas.done_at[oid] = event.timestamp
        if isinstance(event, OrderFulfillment.Completed):
            sagas.end[oid].append("completed")
        else:
            sagas.end[oid].append("compensated")
            sagas.reasons[event.reason.split(":")[0]] += 1
    return sagas


def check_ends(order_ids: set[uuid.UUID], orders: Orders, sagas: Sagas, fails: list[str]) -> set[uuid.UUID]:
    """Every order placed, its saga terminal exactly once, its order ended to match; the completed ones."""
    saga_end, order_end = sagas.end, orders.end
    if set(orders.placed_at) != order_ids:
        fails.append(f"{len(order_ids - set(orders.placed_at))} orders were never placed")
    unfinished = [o for o in order_ids if len(saga_end.get(o, ())) != 1]
    if unfinished:
        fails.append(f"{len(unfinished)} of {len(order_ids)} sagas not terminal exactly once")
    mismatched = [
        o for o in order_ids if saga_end.get(o) and order_end.get(o) != [SAGA_END_OF_ORDER[saga_end[o][0]]]
    ]
    if mismatched:
        fails.append(f"{len(mismatched)} orders whose end disagrees with their saga's")
    return {o for o in order_ids if saga_end.get(o) == ["completed"]}


def check_money(
    system: System, before: Before, order_ids: set[uuid.UUID], orders: Orders, completed: set[uuid.UUID],
    fails: list[str],
) -> dict[str, str]:
    """Charged minus refunded equal to the completed orders' totals, in sum and per order."""
    payment_to_order = {Payment.create_id(o): o for o in order_ids}
    charged: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    refunded: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
    for event in read_log(system.payments, PAYMENT_TOPICS, before.positions[system.payments.name]):
        oid = payment_to_order.get(event.originator_id)
        if oid is None:
            fails.append(f"a payment {event.originator_id} for no order of this run")
        elif isinstance(event, Payment.Charged):
            charged[oid] += event.amount.amount
        else:
            refunded[oid] += event.amount.amount
    total = orders.total
    net = sum(charged.values(), Decimal(0)) - sum(refunded.values(), Decimal(0))
    completed_total = sum((total[o] for o in completed if o in total), Decimal(0))
    if net != completed_total:
        fails.append(f"charged - refunded = {net}, but the completed orders total {completed_total}")
    kept = {o: total.get(o, Decimal(0)) if o in completed else Decimal(0) for o in order_ids}
    wrong_money = [o for o in order_ids if charged[o] - refunded[o] != kept[o]]
    if wrong_money:
        fails.append(f"{len(wrong_money)} orders keep the wrong amount of money")
    return {"charged": str(sum(charged.values(), Decimal(0))),
            "refunded": str(sum(refunded.values(), Decimal(0))),
            "completed_orders_total": str(completed_total)}


def check_stock(
    system: System, before: Before, orders: Orders, completed: set[uuid.UUID], fails: list[str]
) -> dict[str, dict[str, int]]:
    """Nothing reserved at rest, and stock on hand down by exactly what completed orders bought."""
    sold: Counter[uuid.UUID] = Counter()
    for oid in completed:
        for product_id, quantity in orders.lines.get(oid, ()):
            sold[product_id] += quantity
    stock = {}
    for product in SEED_CATALOGUE:
        level = system.inventory.get_stock(product.product_id)
        stock[product.name] = {"on_hand": level.on_hand, "reserved": level.reserved,
                               "sold": sold[product.product_id]}
        if level.reserved:
            fails.append(f"{product.name}: {level.reserved} units still reserved at rest")
        if level.on_hand != before.on_hand[product.product_id] - sold[product.product_id]:
            fails.append(
                f"{product.name}: on hand {level.on_hand}, expected "
                f"{before.on_hand[product.product_id]} - {sold[product.product_id]} sold"
            )
    return stock


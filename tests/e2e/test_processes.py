"""The system as separate processes on PostgreSQL and RabbitMQ: crashes, broker restarts and scale-out.

Each test runs every worker role as its own `saga serve --role R` process, places 200 orders
from the test process (the relay process publishes them), with the default failure rates and a
fixed FAILURE_SEED so that some orders are compensated, disturbs the run in the middle, and then
reads the event stores to prove that every saga ended and that nothing was lost or done twice:
one charge or decline per order, refunds only of what was charged, money and stock conserved.
The last test checks that such a deployment fits in a stock PostgreSQL's connection limit.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.utils import get_topic

from domain.order import OrderStatus
from domain.payment import Payment
from domain.stock import Stock
from infra.bootstrap import System
from infra.settings import Settings
from process_managers.saga import OrderFulfillment
from process_managers.state import SagaStatus
from tests.conftest import unavailable
from tests.e2e.processes import Broker, Cluster
from tests.integration.test_saga_at_volume import assert_money_and_stock_conserved, place_many
from tests.saga_harness import FINISHED

ORDERS = 200
# Orders come in steadily over about twelve seconds, so a disturbance after the first fifty sagas
# have ended strikes a run in full flow, and the restarted process has work still to come.
PLACED_PER_SECOND = 16.0
PLACED_AT_ONCE = 5
DISTURB_AFTER = 50
WORKERS = ("orders", "payments", "inventory", "shipping", "notifications", "saga")
ALL_FINISHED_WITHIN = 90.0
# A command is about a kilobyte on the wire; a copy that takes no share receives only heartbeats.
SHARE = 20 * 1024
ENDINGS = [get_topic(OrderFulfillment.Completed), get_topic(OrderFulfillment.Compensated)]


def start_system(cluster: Cluster, **copies: int) -> None:
    """Every worker role (`copies` of some), then the relay, once the queues it publishes to exist."""
    cluster.start_all(role for role in WORKERS for _ in range(copies.get(role, 1)))
    cluster.start("relay")


class SagaEnds:
    """Follows the saga log for Completed and Compensated, from the test process."""

    def __init__(self, sagas: Application[UUID]) -> None:
        self.sagas = sagas
        self.position = 0
        self.ended: set[UUID] = set()

    def count(self) -> int:
        recorder = self.sagas.recorder
        while page := recorder.select_notifications(
            self.position, 500, topics=ENDINGS, inclusive_of_start=False
        ):
            self.ended.update(UUID(str(n.originator_id)) for n in page)
            self.position = page[-1].id
        return len(self.ended)

    def wait_for(self, count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while self.count() < count:
            assert time.monotonic() < deadline, f"only {len(self.ended)} of {count} sagas ended in {within} s"
            time.sleep(0.1)


def place_steadily(system: System, count: int, per_second: float) -> list[UUID]:
    """`count` orders of one or two random lines, at a steady pace, as customers would place them."""
    order_ids: list[UUID] = []
    start = time.monotonic()
    for index in range(0, count, PLACED_AT_ONCE):
        order_ids += place_many(system, min(PLACED_AT_ONCE, count - index), seed=index)
        time.sleep(max(0.0, start + (index + PLACED_AT_ONCE) / per_second - time.monotonic()))
    return order_ids


@contextmanager
def orders_being_placed(
    system: System, per_second: float = PLACED_PER_SECOND
) -> Iterator[tuple[SagaEnds, Future[list[UUID]]]]:
    """Places the orders in a thread of the test process while the caller disturbs the run."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield SagaEnds(system.sagas), pool.submit(place_steadily, system, ORDERS, per_second)


def run_with(system: System, disturb: Callable[[], None]) -> list[UUID]:
    """Place the orders, `disturb` the run once DISTURB_AFTER sagas have ended, then wait for all."""
    with orders_being_placed(system) as (ends, placing):
        ends.wait_for(DISTURB_AFTER, within=60)
        disturb()
        ended = ends.count()
        order_ids = placing.result(timeout=60)
    # The disturbance struck a run in full flow: it left work for the restarted process or broker.
    assert ended < len(order_ids) - DISTURB_AFTER, f"{ended} sagas had ended when the disturbance was over"
    ends.wait_for(len(order_ids), within=ALL_FINISHED_WITHIN)
    return order_ids


# What the stores say --------------------------------------------------------------------------


def all_events(app: Application[UUID]) -> Iterator[Any]:
    """Every event the application recorded, in commit order."""
    position = 0
    while page := app.recorder.select_notifications(position, 1000, inclusive_of_start=False):
        for notification in page:
            yield app.mapper.to_domain_event(notification)
        position = page[-1].id


@dataclass
class PaymentRecord:
    charged: list[Decimal] = field(default_factory=list)
    declined: int = 0
    voided: int = 0
    refunded: list[Decimal] = field(default_factory=list)


def payment_records(system: System, order_ids: list[UUID]) -> dict[UUID, PaymentRecord]:
    orders = {Payment.create_id(order_id): order_id for order_id in order_ids}
    records = {order_id: PaymentRecord() for order_id in order_ids}
    for event in all_events(system.payments):
        record = records[orders[event.originator_id]]
        if isinstance(event, Payment.Charged):
            record.charged.append(event.amount.amount)
        elif isinstance(event, Payment.Declined):
            record.declined += 1
        elif isinstance(event, Payment.Voided):
            record.voided += 1
        elif isinstance(event, Payment.Refunded):
            record.refunded.append(event.amount.amount)
    return records


def stock_moves(system: System) -> Counter[tuple[str, UUID, UUID]]:
    """(move, product, order) -> how many times the store recorded it."""
    moves: Counter[tuple[str, UUID, UUID]] = Counter()
    for event in all_events(system.inventory):
        if isinstance(event, Stock.Reserved | Stock.Released | Stock.Sold):
            moves[(type(event).__name__, event.originator_id, event.order_id)] += 1
    return moves


def saga_decisions(system: System) -> Counter[tuple[UUID, str, str]]:
    """(saga, event type, step and attempt) -> how many times the saga recorded it."""
    decisions: Counter[tuple[UUID, str, str]] = Counter()
    for event in all_events(system.sagas):
        detail = f"{getattr(event, 'step', '')}/{getattr(event, 'attempt', '')}"
        decisions[(event.originator_id, type(event).__name__, detail)] += 1
    return decisions


def assert_every_saga_ended_once(system: System, order_ids: list[UUID]) -> dict[UUID, SagaStatus]:
    outcomes = {order_id: system.sagas.get_saga(order_id).status for order_id in order_ids}
    # The default failure rates compensate some orders of two hundred, whatever their random ids.
    assert set(outcomes.values()) == set(FINISHED), Counter(outcomes.values())
    for order_id, outcome in outcomes.items():
        expected = OrderStatus.COMPLETED if outcome is SagaStatus.COMPLETED else OrderStatus.CANCELLED
        order = system.orders.get_order(order_id)
        assert order.status is expected, f"order {order_id} is {order.status} after a {outcome} saga"
    repeated = {key: n for key, n in saga_decisions(system).items() if n > 1}
    assert not repeated, f"saga decisions recorded more than once: {repeated}"
    return outcomes


def assert_each_order_charged_at_most_once(system: System, outcomes: dict[UUID, SagaStatus]) -> None:
    records = payment_records(system, list(outcomes))
    for order_id, record in records.items():
        total = system.orders.get_order(order_id).total.amount
        assert len(record.charged) + record.declined == 1, f"order {order_id}: {record}"
        assert record.charged in ([], [total]), f"order {order_id} of {total}: {record}"
        if outcomes[order_id] is SagaStatus.COMPLETED:
            assert record.charged and not record.refunded, f"completed order {order_id}: {record}"
        else:
            assert record.refunded == record.charged, f"compensated order {order_id}: {record}"


def assert_stock_moved_once_per_order(system: System, outcomes: dict[UUID, SagaStatus]) -> None:
    moves = stock_moves(system)
    doubled = {move: n for move, n in moves.items() if n > 1}
    assert not doubled, f"stock moves recorded more than once: {doubled}"
    for order_id, outcome in outcomes.items():
        for line in system.orders.get_order(order_id).lines:
            sold = moves[("Sold", line.product_id, order_id)]
            released = moves[("Released", line.product_id, order_id)]
            reserved = moves[("Reserved", line.product_id, order_id)]
            if outcome is SagaStatus.COMPLETED:
                assert (reserved, sold, released) == (1, 1, 0), f"completed order {order_id}"
            else:
                assert sold == 0 and released == reserved, f"compensated order {order_id}"


def assert_nothing_lost_or_doubled(system: System, order_ids: list[UUID]) -> None:
    assert len(set(order_ids)) == ORDERS
    outcomes = assert_every_saga_ended_once(system, order_ids)
    assert_each_order_charged_at_most_once(system, outcomes)
    assert_stock_moved_once_per_order(system, outcomes)
    assert_money_and_stock_conserved(system, order_ids)


def timed_out_steps(system: System) -> int:
    return sum(1 for event in all_events(system.sagas) if isinstance(event, OrderFulfillment.StepTimedOut))


def assert_nothing_parked(broker: Broker | None, cluster: Cluster) -> None:
    """No message of this test's queues was parked (dead-lettered): each one was handled."""
    if broker is None:
        return  # a remote broker's queues are not listed here
    ours = f"{cluster.settings.bus_namespace}."
    depths = broker.queue_depths()
    parked = {q: n for q, n in depths.items() if q.startswith(ours) and q.endswith(".dead") and n}
    assert not parked, f"messages were parked: {parked}"


def assert_each_copy_had_a_share(broker: Broker, before: dict[str, int], copies: list[str]) -> None:
    """Each copy was delivered at least SHARE bytes of commands (about twenty of them)."""
    deadline = time.monotonic() + 15  # the broker's counters lag by up to 5 s
    while True:
        received = {name: broker.bytes_sent().get(name, 0) - before.get(name, 0) for name in copies}
        if all(n > SHARE for n in received.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert all(n > SHARE for n in received.values()), f"bytes the broker sent each copy: {received}"


# PostgreSQL's default max_connections, less its superuser_reserved_connections.
DEFAULT_CONNECTION_LIMIT = 100 - 3


def connections_by_name(settings: Settings) -> Counter[str]:
    """The database's sessions, by application_name (each role process names its own)."""
    assert settings.postgres is not None
    with psycopg.connect(settings.postgres.url) as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
    return Counter(str(name) or "(unnamed)" for (name,) in rows)


# The tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("victim", ["payments", "saga", "relay"])
def test_a_worker_killed_in_the_middle_of_two_hundred_orders_and_restarted_loses_and_doubles_nothing(
    cluster: Cluster, system: System, broker: Broker | None, victim: str
) -> None:
    start_system(cluster)
    [process] = cluster.role(victim)

    def crash_and_restart() -> None:
        process.kill()
        time.sleep(1)
        process.restart()

    order_ids = run_with(system, crash_and_restart)

    assert process.exit_codes[0] == -9 and process.running
    assert_nothing_lost_or_doubled(system, order_ids)
    assert_nothing_parked(broker, cluster)
    # Down for a few seconds, well within the 30 s step timeout: no step had to be given up.
    assert timed_out_steps(system) == 0


def test_a_broker_restart_in_the_middle_of_two_hundred_orders_loses_and_doubles_nothing(
    cluster: Cluster, system: System, broker: Broker | None
) -> None:
    if broker is None:
        unavailable("rabbitmqctl", "restarting the broker needs rabbitmqctl on the broker's own host")
    start_system(cluster)

    order_ids = run_with(system, broker.restart)

    assert all(process.running for process in cluster.processes)
    assert_nothing_lost_or_doubled(system, order_ids)
    assert_nothing_parked(broker, cluster)
    # Down for a few seconds: every role reconnected and went on well within the step timeout.
    assert timed_out_steps(system) == 0


def test_two_copies_of_payments_and_inventory_share_two_hundred_orders_without_doubling_any(
    cluster: Cluster, system: System, broker: Broker | None
) -> None:
    start_system(cluster, payments=2, inventory=2)
    copies = [p.connection_name for p in (*cluster.role("payments"), *cluster.role("inventory"))]
    before = broker.bytes_sent() if broker else {}

    order_ids = run_with(system, lambda: None)

    assert_nothing_lost_or_doubled(system, order_ids)
    # Every delivery was handled in time: a copy sitting on its share would have let steps time out.
    assert timed_out_steps(system) == 0
    assert_nothing_parked(broker, cluster)
    if broker is not None:  # a remote broker cannot be asked which copy received what
        assert_each_copy_had_a_share(broker, before, copies)


def test_nine_worker_processes_and_a_client_fit_within_postgresqls_default_connection_limit(
    cluster: Cluster, system: System
) -> None:
    start_system(cluster, payments=2, inventory=2)
    system.check()  # the test process's own stores are open too, as a client's would be

    held = connections_by_name(cluster.settings)

    assert sum(held.values()) <= DEFAULT_CONNECTION_LIMIT, f"{sum(held.values())} connections: {held}"

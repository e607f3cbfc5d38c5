"""Inventory on a real store: written once, run on SQLite and on PostgreSQL; plus 50 buyers at once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest

from commands.command import parse_command
from commands.inventory import (
    SEED_CATALOGUE,
    CommitStock,
    Inventory,
    ListProduct,
    ReleaseStock,
    ReserveStock,
    Restock,
)
from domain.reservation import RejectionCode, Reservation, ReservationStatus
from domain.stock import Stock
from domain.values import Money
from infra.eventstore.persistence import application_env
from infra.settings import Settings


@pytest.fixture
def inventory(store_settings: Settings) -> Iterator[Inventory]:
    app = Inventory(application_env(store_settings, "Inventory"))
    yield app
    app.close()


def product(app: Inventory, on_hand: int, name: str = "Wireless Mouse", price: str = "49.99") -> UUID:
    product_id = uuid4()
    app.list_product(ListProduct(product_id=product_id, name=name, price=Decimal(price)))
    if on_hand:
        app.restock(Restock(product_id=product_id, quantity=on_hand))
    return product_id


def reserve(order_id: UUID, *lines: tuple[UUID, int]) -> ReserveStock:
    return parse_command(ReserveStock, {
        "order_id": str(order_id),
        "lines": [{"product_id": str(p), "quantity": q} for p, q in lines],
    })


def status(app: Inventory, order_id: UUID) -> ReservationStatus:
    reservation = app.find_reservation(order_id)
    assert reservation is not None
    return reservation.status


def recorded(app: Inventory, *types: type[Any]) -> list[Any]:
    notifications = app.recorder.select_notifications(None, 100_000)
    events = [app.mapper.to_domain_event(n) for n in notifications]
    return [e for e in events if isinstance(e, types)]


def test_the_seed_catalogue_is_stored_once_however_often_it_is_seeded(
    inventory: Inventory, store_settings: Settings
) -> None:
    assert inventory.seed() == len(SEED_CATALOGUE)
    before = inventory.recorder.max_notification_id()
    restarted = Inventory(application_env(store_settings, "Inventory"))
    try:
        assert restarted.seed() == 0
        assert restarted.recorder.max_notification_id() == before
        products = {s.id: s for s in restarted.list_products()}
    finally:
        restarted.close()
    for seed in SEED_CATALOGUE:
        stock = products[seed.product_id]
        assert (stock.name, stock.on_hand, stock.available) == (seed.name, seed.stock, seed.stock)
        assert stock.price == Money.of(seed.price)
        assert stock.price.amount.as_tuple() == seed.price.as_tuple()


def test_two_processes_seeding_at_once_list_and_stock_each_product_once(
    inventory: Inventory, store_settings: Settings
) -> None:
    other = Inventory(application_env(store_settings, "Inventory"))
    start = threading.Barrier(2)

    def seed(app: Inventory) -> int:
        start.wait()
        return app.seed()

    try:
        with ThreadPoolExecutor(2) as pool:
            listed = sum(pool.map(seed, [inventory, other]))
    finally:
        other.close()
    assert listed == len(SEED_CATALOGUE)
    assert len(recorded(inventory, Stock.Listed)) == len(SEED_CATALOGUE)
    assert sorted(e.quantity for e in recorded(inventory, Stock.Restocked)) == sorted(
        s.stock for s in SEED_CATALOGUE
    )
    assert {s.id: s.on_hand for s in inventory.list_products()} == {
        s.product_id: s.stock for s in SEED_CATALOGUE
    }


def test_a_multi_line_order_reserves_all_or_nothing_on_a_real_store(inventory: Inventory) -> None:
    mouse, hub = product(inventory, 10), product(inventory, 3, "USB-C Hub", "79.99")
    short, fits = uuid4(), uuid4()

    inventory.reserve_stock(reserve(short, (mouse, 2), (hub, 4)))
    assert status(inventory, short) is ReservationStatus.REJECTED
    assert recorded(inventory, Stock.Reserved) == []
    assert (inventory.get_stock(mouse).available, inventory.get_stock(hub).available) == (10, 3)
    [rejection] = recorded(inventory, Reservation.Rejected)
    assert (rejection.line, rejection.product_id, rejection.available) == (1, hub, 3)

    inventory.reserve_stock(reserve(fits, (mouse, 2), (hub, 3)))
    assert status(inventory, fits) is ReservationStatus.RESERVED
    assert {(e.originator_id, e.quantity) for e in recorded(inventory, Stock.Reserved)} == {
        (mouse, 2), (hub, 3)
    }
    assert (inventory.get_stock(mouse).available, inventory.get_stock(hub).available) == (8, 0)


def test_a_redelivered_reservation_reserves_once_on_a_real_store(inventory: Inventory) -> None:
    mouse = product(inventory, 10)
    command = reserve(uuid4(), (mouse, 3))

    assert inventory.reserve_stock(command) is True
    assert inventory.reserve_stock(command) is False

    assert inventory.get_stock(mouse).available == 7
    assert len(recorded(inventory, Stock.Reserved)) == 1
    assert len(recorded(inventory, Reservation.Reserved)) == 1


def test_release_and_commit_move_stock_on_a_real_store(inventory: Inventory) -> None:
    mouse = product(inventory, 10)
    shipped, cancelled, overtaken = uuid4(), uuid4(), uuid4()
    inventory.reserve_stock(reserve(shipped, (mouse, 3)))
    inventory.reserve_stock(reserve(cancelled, (mouse, 4)))

    inventory.commit_stock(CommitStock(order_id=shipped))
    inventory.release_stock(ReleaseStock(order_id=cancelled))
    inventory.release_stock(ReleaseStock(order_id=overtaken))
    inventory.reserve_stock(reserve(overtaken, (mouse, 1)))

    stock = inventory.get_stock(mouse)
    assert (stock.on_hand, stock.reserved, stock.available) == (7, 0, 7)
    assert [status(inventory, o) for o in (shipped, cancelled, overtaken)] == [
        ReservationStatus.COMMITTED, ReservationStatus.RELEASED, ReservationStatus.REJECTED
    ]
    [refusal] = recorded(inventory, Reservation.Rejected)
    assert (refusal.order_id, refusal.code) == (overtaken, RejectionCode.ALREADY_RELEASED)


def test_a_stock_loads_as_of_any_version_across_its_snapshots(inventory: Inventory) -> None:
    inventory.snapshotting_intervals = {Stock: 3}  # type: ignore[misc]
    mouse = product(inventory, 10)
    first, second = uuid4(), uuid4()
    inventory.reserve_stock(reserve(first, (mouse, 3)))
    inventory.reserve_stock(reserve(second, (mouse, 2)))
    inventory.commit_stock(CommitStock(order_id=first))
    inventory.release_stock(ReleaseStock(order_id=second))
    inventory.restock(Restock(product_id=mouse, quantity=5))

    assert inventory.snapshots is not None
    assert [s.originator_version for s in inventory.snapshots.get(mouse)] == [3, 6]
    levels = [(1, 0, 0), (2, 10, 0), (3, 10, 3), (4, 10, 5), (5, 7, 2), (6, 7, 0), (7, 12, 0)]
    for version, on_hand, reserved in levels:
        stock = inventory.get_stock(mouse, version=version)
        assert (stock.version, stock.on_hand, stock.reserved) == (version, on_hand, reserved)
    replayed: Any = None
    events: list[Any] = list(inventory.events.get(mouse))
    for event in events:
        replayed = event.mutate(replayed)
    assert inventory.get_stock(mouse) == replayed


def test_a_snapshot_is_taken_from_the_stock_in_hand_at_the_version_its_save_left_it(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory.snapshotting_intervals = {Stock: 3}  # type: ignore[misc]
    read_back: list[int | None] = []
    take_snapshot = inventory.take_snapshot

    def reading_back(aggregate_id: UUID, version: int | None = None, **kwargs: Any) -> None:
        read_back.append(version)
        take_snapshot(aggregate_id, version, **kwargs)

    monkeypatch.setattr(inventory, "take_snapshot", reading_back)
    mouse = product(inventory, 10)
    inventory.reserve_stock(reserve(uuid4(), (mouse, 3)))  # version 3, the save's last event
    with inventory.unit_of_work():  # versions 4 to 7 in one save: it crosses 6 and leaves the Stock at 7
        for _ in range(4):
            inventory.reserve_stock(reserve(uuid4(), (mouse, 1)))

    assert read_back == []  # nothing read back from the store: each taken from the Stock in hand
    assert inventory.snapshots is not None
    snapshots = list(inventory.snapshots.get(mouse))
    assert [s.originator_version for s in snapshots] == [3, 7]
    replayed: Any = None
    events: list[Any] = list(inventory.events.get(mouse))
    for event in events:
        replayed = event.mutate(replayed)
        if replayed.version in (3, 7):
            [taken] = [s for s in snapshots if s.originator_version == replayed.version]
            assert taken == Stock.Snapshot.take(replayed)  # what reading the stream back would give
    for version, reserved in ((3, 3), (5, 5), (6, 6), (7, 7)):
        stock = inventory.get_stock(mouse, version=version)
        assert (stock.version, stock.on_hand, stock.reserved) == (version, 10, reserved)


def test_fifty_buyers_of_the_last_ten_units_get_ten_and_nothing_is_oversold(
    postgres_settings: Settings,
) -> None:
    settings = postgres_settings.model_copy(
        update={"postgres_pool_size": 10, "postgres_max_overflow": 50}
    )
    app = Inventory(application_env(settings, "Inventory"))
    try:
        mouse = product(app, 10)
        buyers = [uuid4() for _ in range(50)]
        start = threading.Barrier(len(buyers))

        def buy(order_id: UUID) -> bool:
            start.wait()
            return app.reserve_stock(reserve(order_id, (mouse, 1)))

        with ThreadPoolExecutor(len(buyers)) as pool:
            handled = list(pool.map(buy, buyers))

        assert handled == [True] * 50
        outcomes = Counter(status(app, order_id) for order_id in buyers)
        assert outcomes == {ReservationStatus.RESERVED: 10, ReservationStatus.REJECTED: 40}
        stock = app.get_stock(mouse)
        assert (stock.on_hand, stock.reserved, stock.available) == (10, 10, 0)
        _assert_the_store_agrees(app, mouse, buyers)
    finally:
        app.close()


def _assert_the_store_agrees(app: Inventory, mouse: UUID, buyers: list[UUID]) -> None:
    holders = {o for o in buyers if status(app, o) is ReservationStatus.RESERVED}
    events: list[Any] = list(app.events.get(mouse))
    assert {e.order_id for e in events if isinstance(e, Stock.Reserved)} == holders
    assert sum(isinstance(e, Stock.Reserved) for e in events) == 10
    assert len(recorded(app, Reservation.Reserved)) == 10
    assert len(recorded(app, Reservation.Rejected)) == 40
    stock: Any = None
    for event in events:
        stock = event.mutate(stock)
        assert stock.available >= 0

"""The inventory context's command handlers, over an in-memory store."""

from __future__ import annotations

from collections.abc import Iterator
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
    ProductAlreadyListedError,
    ReleaseStock,
    ReservationNotFoundError,
    ReserveStock,
    Restock,
)
from domain.base import ValidationError
from domain.reservation import (
    RejectionCode,
    Reservation,
    ReservationCommittedError,
    ReservationNotHeldError,
    ReservationStatus,
    StockLine,
)
from domain.stock import Stock, UnknownProductError
from domain.values import Money
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from tests.dsl import ev, given


@pytest.fixture
def inventory(memory_settings: Settings) -> Iterator[Inventory]:
    app = Inventory(application_env(memory_settings, "Inventory"))
    yield app
    app.close()


def listed(product_id: UUID, name: str = "Wireless Mouse", price: str = "49.99") -> ev:
    return ev(Stock.Listed, id=product_id, name=name, price=Money.of(price))


def stocked(product_id: UUID, quantity: int) -> ev:
    return ev(Stock.Restocked, id=product_id, quantity=quantity)


def reserve(order_id: UUID, *lines: tuple[UUID, int]) -> ReserveStock:
    return parse_command(ReserveStock, {
        "order_id": str(order_id),
        "lines": [{"product_id": str(product), "quantity": quantity} for product, quantity in lines],
    })


Products = tuple[UUID, UUID]


@pytest.fixture
def mouse_and_hub(inventory: Inventory) -> Products:
    """A mouse with 10 available and a hub with 4."""
    mouse, hub = uuid4(), uuid4()
    inventory.events.put(
        given(listed(mouse), stocked(mouse, 10), listed(hub, "USB-C Hub", "79.99"), stocked(hub, 4)).events
    )
    return mouse, hub


def nothing_written(app: Inventory) -> bool:
    return app.recorder.max_notification_id() in (None, 0)


def test_listing_a_product_puts_it_in_the_catalogue_at_its_price(inventory: Inventory) -> None:
    product = uuid4()
    given(app=inventory).when(ListProduct(product_id=product, name="USB-C Hub", price=Decimal("79.99"))).then(
        ev(Stock.Listed, id=product, name="USB-C Hub", price=Money.of("79.99"))
    )
    assert [(s.id, s.name, s.price) for s in inventory.list_products()] == [
        (product, "USB-C Hub", Money.of("79.99"))
    ]


def test_a_product_is_listed_once(inventory: Inventory) -> None:
    product = uuid4()
    given(listed(product), app=inventory).when(
        ListProduct(product_id=product, name="Other", price=Decimal("1.00"))
    ).raises(ProductAlreadyListedError, field="product_id")
    assert inventory.get_stock(product).name == "Wireless Mouse"


def test_restocking_raises_what_is_available(inventory: Inventory) -> None:
    product = uuid4()
    given(listed(product), stocked(product, 4), app=inventory).when(
        Restock(product_id=product, quantity=6)
    ).then(ev(Stock.Restocked, id=product, quantity=6))
    assert inventory.get_stock(product).available == 10


def test_restocking_an_unknown_product_is_refused(inventory: Inventory) -> None:
    given(app=inventory).when(Restock(product_id=uuid4(), quantity=6)).raises(
        UnknownProductError, field="product_id"
    )


def test_an_order_reserves_all_its_lines_in_one_go(inventory: Inventory, mouse_and_hub: Products) -> None:
    mouse, hub = mouse_and_hub
    order = uuid4()
    command = reserve(order, (mouse, 2), (hub, 4))
    outcome = given(app=inventory).when(command).then(
        ev(Stock.Reserved, id=mouse, order_id=order, quantity=2),
        ev(Stock.Reserved, id=hub, order_id=order, quantity=4),
        ev(Reservation.Opened, id=Reservation.create_id(order), order_id=order),
        ev(Reservation.Reserved, order_id=order, lines=(
            StockLine(product_id=mouse, quantity=2), StockLine(product_id=hub, quantity=4))),
    )
    assert {e.correlation_id for e in outcome.events} == {order}
    assert {e.causation_id for e in outcome.events} == {command.tracking_name}
    assert (inventory.get_stock(mouse).available, inventory.get_stock(hub).available) == (8, 0)


def test_one_short_line_reserves_nothing_and_the_rejection_names_it(
    inventory: Inventory, mouse_and_hub: Products
) -> None:
    mouse, hub = mouse_and_hub
    order = uuid4()
    given(app=inventory).when(reserve(order, (mouse, 2), (hub, 5))).then(
        ev(Reservation.Opened, order_id=order),
        ev(Reservation.Rejected, order_id=order, code=RejectionCode.INSUFFICIENT_STOCK, line=1,
           product_id=hub, requested=5, available=4),
    )
    assert (inventory.get_stock(mouse).available, inventory.get_stock(hub).available) == (10, 4)
    reservation = inventory.find_reservation(order)
    assert reservation is not None and reservation.status is ReservationStatus.REJECTED


def test_an_unknown_product_is_refused_and_nothing_is_written(inventory: Inventory) -> None:
    mouse = uuid4()
    given(listed(mouse), stocked(mouse, 10), app=inventory).when(
        reserve(uuid4(), (mouse, 1), (uuid4(), 1))
    ).raises(UnknownProductError, field="lines[1].product_id")
    assert inventory.get_stock(mouse).available == 10


def test_a_product_twice_in_one_reservation_is_refused(inventory: Inventory, mouse_and_hub: Products) -> None:
    mouse, _ = mouse_and_hub
    given(app=inventory).when(reserve(uuid4(), (mouse, 1), (mouse, 2))).raises(
        ValidationError, field="lines[1].product_id"
    )


def test_a_repeated_reserve_command_reserves_once(inventory: Inventory, mouse_and_hub: Products) -> None:
    mouse, _ = mouse_and_hub
    command = reserve(uuid4(), (mouse, 3))
    assert inventory.reserve_stock(command) is True
    given(app=inventory).when(command).then_nothing()
    assert inventory.reserve_stock(command) is False
    assert inventory.get_stock(mouse).available == 7


def test_a_second_reserve_command_for_a_reserved_order_changes_nothing(
    inventory: Inventory, mouse_and_hub: Products
) -> None:
    mouse, _ = mouse_and_hub
    order = uuid4()
    inventory.reserve_stock(reserve(order, (mouse, 3)))
    given(app=inventory).when(reserve(order, (mouse, 3))).then_nothing()
    assert inventory.get_stock(mouse).available == 7


def test_releasing_an_order_gives_back_every_line(inventory: Inventory, mouse_and_hub: Products) -> None:
    mouse, hub = mouse_and_hub
    order = uuid4()
    inventory.reserve_stock(reserve(order, (mouse, 2), (hub, 4)))
    given(app=inventory).when(ReleaseStock(order_id=order)).then(
        ev(Stock.Released, id=mouse, order_id=order, quantity=2),
        ev(Stock.Released, id=hub, order_id=order, quantity=4),
        ev(Reservation.Released, order_id=order),
    )
    assert (inventory.get_stock(mouse).available, inventory.get_stock(hub).available) == (10, 4)
    given(app=inventory).when(ReleaseStock(order_id=order)).then_nothing()


def test_a_release_that_overtakes_its_reservation_makes_the_late_reservation_fail(
    inventory: Inventory, mouse_and_hub: Products
) -> None:
    mouse, _ = mouse_and_hub
    order = uuid4()
    given(app=inventory).when(ReleaseStock(order_id=order)).then(
        ev(Reservation.Opened, order_id=order), ev(Reservation.ReleasedBeforeReserved, order_id=order)
    )
    given(app=inventory).when(reserve(order, (mouse, 2))).then(
        ev(Reservation.Rejected, order_id=order, code=RejectionCode.ALREADY_RELEASED)
    )
    assert inventory.get_stock(mouse).available == 10
    given(app=inventory).when(reserve(order, (mouse, 2))).then_nothing()


def test_committing_an_order_sells_its_units(inventory: Inventory, mouse_and_hub: Products) -> None:
    mouse, hub = mouse_and_hub
    order = uuid4()
    inventory.reserve_stock(reserve(order, (mouse, 2), (hub, 1)))
    command = CommitStock(order_id=order)
    given(app=inventory).when(command).then(
        ev(Stock.Sold, id=mouse, order_id=order, quantity=2),
        ev(Stock.Sold, id=hub, order_id=order, quantity=1),
        ev(Reservation.Committed, order_id=order),
    )
    stock = inventory.get_stock(mouse)
    assert (stock.on_hand, stock.reserved, stock.available) == (8, 0, 8)
    given(app=inventory).when(command).then_nothing()
    given(app=inventory).when(CommitStock(order_id=order)).then_nothing()


def test_committing_an_order_without_a_reservation_is_refused(inventory: Inventory) -> None:
    given(app=inventory).when(CommitStock(order_id=uuid4())).raises(
        ReservationNotFoundError, field="order_id"
    )


def test_committing_a_rejected_order_is_refused(inventory: Inventory, mouse_and_hub: Products) -> None:
    _, hub = mouse_and_hub
    order = uuid4()
    inventory.reserve_stock(reserve(order, (hub, 50)))
    given(app=inventory).when(CommitStock(order_id=order)).raises(ReservationNotHeldError, field="order_id")


def test_a_committed_order_cannot_be_released(inventory: Inventory, mouse_and_hub: Products) -> None:
    mouse, _ = mouse_and_hub
    order = uuid4()
    inventory.reserve_stock(reserve(order, (mouse, 2)))
    inventory.commit_stock(CommitStock(order_id=order))
    given(app=inventory).when(ReleaseStock(order_id=order)).raises(ReservationCommittedError)
    assert inventory.get_stock(mouse).on_hand == 8


def lines_of(*quantities: object) -> list[dict[str, Any]]:
    return [{"product_id": str(uuid4()), "quantity": q} for q in quantities]


@pytest.mark.parametrize(
    ("cls", "data", "field"),
    [
        (ReserveStock, {"order_id": "nope", "lines": lines_of(1)}, "order_id"),
        (ReserveStock, {"order_id": str(uuid4()), "lines": []}, "lines"),
        (ReserveStock, {"order_id": str(uuid4()), "lines": lines_of(*[1] * 101)}, "lines"),
        (ReserveStock, {"order_id": str(uuid4()), "lines": lines_of(1, 0)}, "lines[1].quantity"),
        (ReserveStock, {"order_id": str(uuid4()), "lines": lines_of(1001)}, "lines[0].quantity"),
        (ReserveStock, {"order_id": str(uuid4()), "lines": lines_of(1.5)}, "lines[0].quantity"),
        (ReserveStock, {"order_id": str(uuid4()), "lines": lines_of(True)}, "lines[0].quantity"),
        (ReserveStock, {"order_id": str(uuid4()), "lines": [{"product_id": "x", "quantity": 1}]},
         "lines[0].product_id"),
        (Restock, {"product_id": str(uuid4()), "quantity": 0}, "quantity"),
        (Restock, {"product_id": str(uuid4()), "quantity": 100_001}, "quantity"),
        (ListProduct, {"product_id": str(uuid4()), "name": "  ", "price": "1.00"}, "name"),
        (ListProduct, {"product_id": str(uuid4()), "name": "Hub", "price": 79.99}, "price"),
        (ListProduct, {"product_id": str(uuid4()), "name": "Hub", "price": "0"}, "price"),
        (ListProduct, {"product_id": str(uuid4()), "name": "Hub", "price": "79.999"}, "price"),
        (ListProduct, {"product_id": str(uuid4()), "name": "Hub", "price": "1", "currency": "usd"},
         "currency"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    inventory: Inventory, cls: type[Any], data: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        inventory.handle(parse_command(cls, data))
    assert raised.value.field == field
    assert nothing_written(inventory)


def test_a_price_keeps_its_cents_exactly(inventory: Inventory) -> None:
    product = uuid4()
    data = {"product_id": str(product), "name": "Hub", "price": "0.10"}
    inventory.list_product(parse_command(ListProduct, data))
    assert inventory.get_stock(product).price.amount.as_tuple() == Decimal("0.10").as_tuple()


def test_every_listed_product_is_listed_in_the_order_it_was_listed(inventory: Inventory) -> None:
    first, second = uuid4(), uuid4()
    inventory.list_product(ListProduct(product_id=first, name="Hub", price=Decimal("79.99")))
    inventory.restock(Restock(product_id=first, quantity=3))
    assert [s.id for s in inventory.list_products()] == [first]
    inventory.list_product(ListProduct(product_id=second, name="Mouse", price=Decimal("49.99")))
    products = inventory.list_products()
    assert [(s.id, s.name, s.on_hand) for s in products] == [(first, "Hub", 3), (second, "Mouse", 0)]


def test_the_seed_catalogue_is_listed_and_stocked_once(inventory: Inventory) -> None:
    assert inventory.seed() == len(SEED_CATALOGUE)
    seeded = {s.id: (s.name, s.price, s.on_hand) for s in inventory.list_products()}
    assert seeded == {p.product_id: (p.name, Money.of(p.price), p.stock) for p in SEED_CATALOGUE}
    assert seeded[UUID("550e8400-e29b-41d4-a716-446655440001")] == ("Laptop Pro 15", Money.of("1299.99"), 50)
    before = inventory.recorder.max_notification_id()
    assert inventory.seed() == 0
    assert inventory.recorder.max_notification_id() == before


def test_seeding_leaves_a_product_listed_by_someone_else_alone(inventory: Inventory) -> None:
    laptop = SEED_CATALOGUE[0].product_id
    inventory.list_product(
        ListProduct(product_id=laptop, name="Laptop (refurbished)", price=Decimal("999.00"))
    )
    assert inventory.seed() == len(SEED_CATALOGUE) - 1
    stock = inventory.get_stock(laptop)
    assert (stock.name, stock.on_hand) == ("Laptop (refurbished)", 0)


def test_an_unknown_product_has_no_stock(inventory: Inventory) -> None:
    with pytest.raises(UnknownProductError):
        inventory.get_stock(uuid4())

"""The inventory context: the catalogue, stock levels, and each order's reservation."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from contextlib import suppress
from decimal import Decimal
from typing import Annotated, Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.utils import get_topic
from pydantic import BaseModel, ConfigDict, Field

from commands.base import ContextApplication
from commands.command import Command, handles
from domain.base import Aggregate, InvalidStateError, NotFoundError
from domain.reservation import MAX_LINE_QUANTITY, MAX_LINES, Reservation, StockLine
from domain.stock import MAX_RESTOCK, Stock, UnknownProductError
from domain.values import DEFAULT_CURRENCY, Amount, Currency, Money


class ListProduct(Command):
    product_id: UUID
    name: Annotated[str, Field(min_length=1, max_length=200)]
    price: Amount
    currency: Currency = DEFAULT_CURRENCY


class Restock(Command):
    product_id: UUID
    quantity: Annotated[int, Field(ge=1, le=MAX_RESTOCK, strict=True)]


class ReserveLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: UUID
    quantity: Annotated[int, Field(ge=1, le=MAX_LINE_QUANTITY, strict=True)]


class ReserveStock(Command):
    """Reserve every line of an order, or none of them."""

    order_id: UUID
    lines: Annotated[list[ReserveLine], Field(min_length=1, max_length=MAX_LINES)]


class ReleaseStock(Command):
    order_id: UUID


class CommitStock(Command):
    """The order has shipped: its reserved units are sold."""

    order_id: UUID


class ProductAlreadyListedError(InvalidStateError):
    code = "PRODUCT_ALREADY_LISTED"


class ReservationNotFoundError(NotFoundError):
    code = "RESERVATION_NOT_FOUND"


class SeedProduct(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: UUID
    name: str
    price: Decimal
    stock: int

    def listing(self) -> ListProduct:
        # Fixed command ids make seeding exactly-once, however many processes seed at once.
        return ListProduct(
            command_id=uuid5(NAMESPACE_URL, f"/seed/list/{self.product_id}"),
            product_id=self.product_id,
            name=self.name,
            price=self.price,
        )

    def restocking(self) -> Restock:
        return Restock(
            command_id=uuid5(NAMESPACE_URL, f"/seed/restock/{self.product_id}"),
            product_id=self.product_id,
            quantity=self.stock,
        )


def _seed(product_id: str, name: str, price: str, stock: int) -> SeedProduct:
    return SeedProduct(product_id=UUID(product_id), name=name, price=Decimal(price), stock=stock)


SEED_CATALOGUE: tuple[SeedProduct, ...] = (
    _seed("550e8400-e29b-41d4-a716-446655440001", "Laptop Pro 15", "1299.99", 50),
    _seed("550e8400-e29b-41d4-a716-446655440002", "Wireless Mouse", "49.99", 100),
    _seed("550e8400-e29b-41d4-a716-446655440003", "USB-C Hub", "79.99", 75),
    _seed("550e8400-e29b-41d4-a716-446655440004", "Mechanical Keyboard", "159.99", 30),
    _seed("550e8400-e29b-41d4-a716-446655440005", "Monitor 24 inch", "299.99", 25),
)

LISTED_TOPIC = get_topic(Stock.Listed)
INDEX_PAGE = 500


class Inventory(ContextApplication):
    """Lists products, keeps their stock, and reserves it for orders all-or-nothing."""

    name = "Inventory"
    # A Stock lives as long as its product and changes with every order.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Stock: 100}

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        self._listed: list[UUID] = []
        self._indexed_up_to = 0
        self._listings = self.follower(window=INDEX_PAGE, topics=[LISTED_TOPIC], woken_by_saves=False)
        self._index_lock = threading.Lock()

    @handles(ListProduct)
    def list_product(self, command: ListProduct) -> bool:
        price = Money(amount=command.price, currency=command.currency)

        def decide() -> list[Aggregate]:
            if self.find(command.product_id, Stock) is not None:
                raise ProductAlreadyListedError(
                    f"product {command.product_id} is listed already", field="product_id"
                )
            return [Stock.list_product(command.product_id, command.name, price)]

        return self.execute(command, decide)

    @handles(Restock)
    def restock(self, command: Restock) -> bool:
        def decide() -> list[Aggregate]:
            stock = self._stock(command.product_id, field="product_id")
            stock.restock(command.quantity)
            return [stock]

        return self.execute(command, decide)

    @handles(ReserveStock)
    def reserve_stock(self, command: ReserveStock) -> bool:
        """Reserve all lines in one transaction; a shortfall is recorded as a rejection."""
        lines = [StockLine(product_id=x.product_id, quantity=x.quantity) for x in command.lines]

        def decide() -> list[Aggregate]:
            reservation = self._reservation(command.order_id)
            stocks = self._line_stocks(lines) if reservation.awaits_stock else {}
            reservation.reserve(lines, stocks)
            return [*stocks.values(), reservation]

        return self.execute(command, decide, correlation_id=command.order_id)

    @handles(ReleaseStock)
    def release_stock(self, command: ReleaseStock) -> bool:
        """Release what the order holds; a release before its reservation is remembered."""

        def decide() -> list[Aggregate]:
            reservation = self._reservation(command.order_id)
            stocks = self._held_stocks(reservation)
            reservation.release(stocks)
            return [*stocks.values(), reservation]

        return self.execute(command, decide, correlation_id=command.order_id)

    @handles(CommitStock)
    def commit_stock(self, command: CommitStock) -> bool:
        def decide() -> list[Aggregate]:
            reservation = self.find_reservation(command.order_id)
            if reservation is None:
                raise ReservationNotFoundError(
                    f"order {command.order_id} has no reservation", field="order_id"
                )
            stocks = self._held_stocks(reservation)
            reservation.commit(stocks)
            return [*stocks.values(), reservation]

        return self.execute(command, decide, correlation_id=command.order_id)

    def get_stock(self, product_id: UUID, *, version: int | None = None) -> Stock:
        return self._stock(product_id, field="product_id", version=version)

    def order_streams(self, order_id: UUID) -> dict[str, UUID]:
        # The order's Stock events live in each product's stream among every other
        # order's; its Reservation, saved in the same transactions, names its lines.
        return {"reservation": Reservation.create_id(order_id)}

    def streams_of_orders(self, order_ids: Iterable[UUID]) -> set[UUID]:
        # Every order touches a few of the products' Stocks; there are few of them, all hot.
        return super().streams_of_orders(order_ids) | set(self._listed_product_ids())

    def may_have_snapshots(self, aggregate_id: UUID) -> bool:
        return aggregate_id in self._listed  # only Stocks take snapshots (as far as indexed)

    def find_reservation(self, order_id: UUID) -> Reservation | None:
        return self.find(Reservation.create_id(order_id), Reservation)

    def list_products(self) -> list[Stock]:
        """Every listed product as the store holds it now, in the order they were listed."""
        return [self.get_stock(product_id) for product_id in self._listed_product_ids()]

    def seed(self) -> int:
        """List and stock each seed product that is not listed yet; returns how many it listed."""
        listed = 0
        for product in SEED_CATALOGUE:
            listing, restocking = product.listing(), product.restocking()
            with suppress(ProductAlreadyListedError):  # listed by someone else: leave it be
                listed += self.list_product(listing)
            # Asking first spares a restart the cost of a refused duplicate write.
            if self.has_handled(listing) and not self.has_handled(restocking):
                self.restock(restocking)
        return listed

    def _stock(self, product_id: UUID, *, field: str, version: int | None = None) -> Stock:
        stock = self.find(product_id, Stock, version=version)
        if stock is None:
            raise UnknownProductError(f"no product {product_id} in the catalogue", field=field)
        return stock

    def _reservation(self, order_id: UUID) -> Reservation:
        return self.find_reservation(order_id) or Reservation(order_id=order_id)

    def _line_stocks(self, lines: list[StockLine]) -> dict[UUID, Stock]:
        return {
            line.product_id: self._stock(line.product_id, field=f"lines[{index}].product_id")
            for index, line in enumerate(lines)
        }

    def _held_stocks(self, reservation: Reservation) -> dict[UUID, Stock]:
        return {product_id: self.get_stock(product_id) for product_id in reservation.product_ids}

    def _listed_product_ids(self) -> list[UUID]:
        # Products are never unlisted, so the ids seen so far stay valid and each call
        # reads only what was recorded since the last.
        with self._index_lock:
            self._indexed_up_to = self._listings.catch_up(
                self._indexed_up_to,
                lambda window: self._listed.extend(UUID(str(n.originator_id)) for n in window),
            )
            return list(self._listed)

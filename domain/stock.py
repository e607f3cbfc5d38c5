"""The Stock aggregate (inventory context): one per product, its id the product id."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event
from pydantic import BaseModel, ConfigDict

from domain.base import Aggregate, InvalidStateError, NotFoundError, ValidationError
from domain.values import Money

MAX_RESTOCK = 100_000


class InsufficientStockError(InvalidStateError):
    """Fewer units are available than were asked for."""

    code = "INSUFFICIENT_STOCK"


class UnknownProductError(NotFoundError):
    """No product with that id is listed."""

    code = "UNKNOWN_PRODUCT"


class Stock(Aggregate):
    """How many units of one product are on hand, and which orders hold some of them.

    Units reserved for an order stay on hand until the order's shipment is
    committed (`Sold`) or the reservation is released, so `available` is what
    a new order may still take.
    """

    class Listed(Aggregate.Created):
        name: str
        price: Money

    class Restocked(Aggregate.Event):
        quantity: int

    class Reserved(Aggregate.Event):
        order_id: UUID
        quantity: int

    # Released and Sold carry the quantity as well as the order, so that a read
    # model can follow the levels from the events alone.
    class Released(Aggregate.Event):
        order_id: UUID
        quantity: int

    class Sold(Aggregate.Event):
        order_id: UUID
        quantity: int

    @classmethod
    def list_product(cls, product_id: UUID, name: str, price: Money) -> Stock:
        if not name.strip():
            raise ValidationError("a product needs a name", field="name")
        if not price.is_positive():
            raise ValidationError("a price must be above zero", field="price")
        stock: Stock = cls._create(cls.Listed, id=product_id, name=name.strip(), price=price)
        return stock

    @event(Listed)
    def __init__(self, name: str, price: Money) -> None:
        self.name = name
        self.price = price
        self.on_hand = 0
        self.reservations: dict[UUID, int] = {}

    @property
    def reserved(self) -> int:
        return sum(self.reservations.values())

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    def holds(self, order_id: UUID) -> bool:
        return order_id in self.reservations

    def can_reserve(self, order_id: UUID, quantity: int) -> bool:
        """Whether `reserve` would succeed (holding already counts as success)."""
        return self.holds(order_id) or 0 < quantity <= self.available

    def restock(self, quantity: int) -> None:
        if not 1 <= quantity <= MAX_RESTOCK:
            raise ValidationError(
                f"restock between 1 and {MAX_RESTOCK} units at a time", field="quantity"
            )
        self._restocked(quantity=quantity)

    def reserve(self, order_id: UUID, quantity: int) -> None:
        """Set units aside for an order; an order holds at most one reservation here."""
        if self.holds(order_id):
            return
        if quantity < 1:
            raise ValidationError("reserve at least one unit", field="quantity")
        if quantity > self.available:
            raise InsufficientStockError(
                f"{self.name}: {quantity} requested, {self.available} available",
                field="quantity",
            )
        self._reserved(order_id=order_id, quantity=quantity)

    def release(self, order_id: UUID) -> None:
        if self.holds(order_id):
            self._released(order_id=order_id, quantity=self.reservations[order_id])

    def sell(self, order_id: UUID) -> None:
        """The order's reserved units leave the warehouse."""
        if self.holds(order_id):
            self._sold(order_id=order_id, quantity=self.reservations[order_id])

    @event(Restocked)
    def _restocked(self, quantity: int) -> None:
        self.on_hand += quantity

    @event(Reserved)
    def _reserved(self, order_id: UUID, quantity: int) -> None:
        self.reservations[order_id] = quantity

    @event(Released)
    def _released(self, order_id: UUID, quantity: int) -> None:
        del self.reservations[order_id]

    @event(Sold)
    def _sold(self, order_id: UUID, quantity: int) -> None:
        del self.reservations[order_id]
        self.on_hand -= quantity

    class Snapshot(BaseModel):
        """The state of a Stock at one version, typed so that it loads back as it was."""

        model_config = ConfigDict(frozen=True, extra="forbid")

        originator_id: UUID
        originator_version: int
        timestamp: datetime
        state: StockState

        @classmethod
        def take(cls, stock: Stock) -> Stock.Snapshot:
            state = StockState(
                name=stock.name,
                price=stock.price,
                on_hand=stock.on_hand,
                reservations=dict(stock.reservations),
                created_on=stock.created_on,
                modified_on=stock.modified_on,
            )
            return cls(
                originator_id=stock.id,
                originator_version=stock.version,
                timestamp=stock.modified_on,
                state=state,
            )

        def mutate(self, _: Any) -> Stock:
            stock: Stock = object.__new__(Stock)
            stock.__base_init__(self.originator_id, self.originator_version, self.state.created_on)
            stock._modified_on = self.state.modified_on
            stock.name = self.state.name
            stock.price = self.state.price
            stock.on_hand = self.state.on_hand
            stock.reservations = dict(self.state.reservations)
            return stock


class StockState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    price: Money
    on_hand: int
    reservations: dict[UUID, int]
    created_on: datetime
    modified_on: datetime


Stock.Snapshot.model_rebuild()

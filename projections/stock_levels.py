"""How many units of each product are on hand and reserved: the catalogue as customers see it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.stock import Stock
from projections.facts import Fact
from projections.projection import CannotApplyError, Projection, changed, require
from projections.read_model import ProductRow
from projections.store import Index, ReadStore, Row, TableSpec, as_decimal, as_uuid, fetch_in

LISTED, RESTOCKED, RESERVED = get_topic(Stock.Listed), get_topic(Stock.Restocked), get_topic(Stock.Reserved)
RELEASED, SOLD = get_topic(Stock.Released), get_topic(Stock.Sold)


def evolve(row: ProductRow | None, fact: Fact) -> ProductRow:
    """A product's levels after one of its Stock's events."""
    data = fact.data
    if fact.topic == LISTED:
        price = data["price"]
        return ProductRow(
            id=fact.originator_id, name=data["name"], price=Decimal(price["amount"]),
            currency=price["currency"], on_hand=0, reserved=0,
        )
    product = require(row, fact)
    quantity = int(data["quantity"])
    if fact.topic == RESTOCKED:
        return changed(product, on_hand=product.on_hand + quantity)
    if fact.topic == RESERVED:
        return changed(product, reserved=product.reserved + quantity)
    if fact.topic == RELEASED:
        return changed(product, reserved=product.reserved - quantity)
    if fact.topic == SOLD:
        return changed(product, reserved=product.reserved - quantity, on_hand=product.on_hand - quantity)
    raise CannotApplyError(f"stock levels do not read {fact.topic}")


class StockLevels(Projection[ProductRow]):
    name = "stock_levels"
    applications = ("Inventory",)
    topics = frozenset({LISTED, RESTOCKED, RESERVED, RELEASED, SOLD})
    base_table = TableSpec(
        "read_products",
        (("id", "uuid"), ("name", "text"), ("price", "money"), ("currency", "text"),
         ("on_hand", "int"), ("reserved", "int")),
        ("id",),
        (Index("name_idx", "name, id"),),
    )

    def evolve(self, row: ProductRow | None, fact: Fact) -> ProductRow:
        return evolve(row, fact)

    def encode(self, row: ProductRow) -> tuple[Any, ...]:
        return (row.id, row.name, row.price, row.currency, row.on_hand, row.reserved)

    def decode(self, record: Row) -> ProductRow:
        return ProductRow(
            id=as_uuid(record["id"]), name=record["name"], price=as_decimal(record["price"]),
            currency=record["currency"], on_hand=int(record["on_hand"]), reserved=int(record["reserved"]),
        )


async def products(store: ReadStore, ids: list[UUID] | None = None) -> list[ProductRow]:
    """Every product by name, or the ones with these ids."""
    projection, table = StockLevels(), StockLevels.base_table
    columns = ", ".join(table.column_names)
    if ids is None:
        records = await store.fetch(f"SELECT {columns} FROM {table.name} ORDER BY name, id")
    else:
        records = await fetch_in(store, f"SELECT {columns} FROM {table.name} WHERE id IN ({{ids}})", ids)
    return [projection.decode(r) for r in records]


async def product_names(store: ReadStore, ids: set[UUID]) -> dict[UUID, str]:
    return {p.id: p.name for p in await products(store, sorted(ids))}

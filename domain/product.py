"""The Product aggregate (orders context): a product as Orders knows it, one per product id.

Orders prices every order from its own catalogue, never from Inventory's store:
what it knows of a product is what Inventory told it (`ProductListed`), kept
here as events of Orders' own. Inventory fixes a product's name and price when
it lists it, so a product is heard once and never changes after.

Its stream id is derived from the product id (`Product.create_id`), not the product
id itself: that names Inventory's `Stock` stream, and a stream id says which store
holds it (an audit of the product finds its stock, not what Orders heard of it).
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from domain.base import Aggregate
from domain.values import Money


class Product(Aggregate):
    """The name and price of one listed product, as Orders heard them."""

    class Heard(Aggregate.Created):
        name: str
        price: Money

    @staticmethod
    def create_id(product_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/orders/products/{product_id}")

    @classmethod
    def hear(cls, product_id: UUID, name: str, price: Money) -> Product:
        product: Product = cls._create(cls.Heard, id=cls.create_id(product_id), name=name, price=price)
        return product

    @event(Heard)
    def __init__(self, name: str, price: Money) -> None:
        self.name = name
        self.price = price

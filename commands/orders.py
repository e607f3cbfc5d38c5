"""The orders context: placing, completing and cancelling orders, at the prices of its own catalogue.

Orders never reads another context's store. What it knows of the products is
what Inventory told it (`ProductListed`), heard exactly once each through its
consumer and kept as `Product` aggregates in Orders' own store; an order naming
a product not heard of yet is refused, and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from eventsourcing.persistence import Notification, Tracking
from eventsourcing.utils import get_topic
from pydantic import BaseModel, ConfigDict, Field

from commands.base import ContextApplication
from commands.command import Command, handles
from commands.contract.messages import ProductListed
from domain.base import Aggregate, NotFoundError, ValidationError
from domain.order import MAX_LINES, MAX_QUANTITY, Order, OrderLine
from domain.privacy import Forgetting
from domain.product import Product
from domain.stock import UnknownProductError
from domain.values import Address, Money

PLACED_TOPIC = get_topic(Order.Placed)


class CatalogueEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: UUID
    name: str
    price: Money


class OrderItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: UUID
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]
    price: Decimal | None = Field(default=None, description="if given, must equal the catalogue")


class PlaceOrder(Command):
    customer_id: UUID
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=MAX_LINES)]
    shipping_address: Address

    @property
    def order_id(self) -> UUID:
        return Order.create_id(self.command_id)


class RequestCancellation(Command):
    order_id: UUID
    reason: Annotated[str, Field(max_length=500)] = "cancelled by customer"


class CompleteOrder(Command):
    order_id: UUID


class CancelOrder(Command):
    order_id: UUID
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ForgetCustomer(Command):
    """Erase a customer's personal data in every order of theirs, and record who asked."""

    customer_id: UUID
    requested_by: Annotated[str, Field(min_length=1, max_length=200)]


class PriceMismatchError(ValidationError):
    code = "PRICE_MISMATCH"


class OrderNotFoundError(NotFoundError):
    code = "ORDER_NOT_FOUND"


class Orders(ContextApplication):
    """Places orders at catalogue prices and moves them to their end."""

    name = "Orders"

    # An order placed, completed or cancelled: a line each is worth reading at INFO.
    handled_log_level = logging.INFO
    personal_data_enters = True  # a customer's address enters with their order

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        super().__init__(env)
        # A product heard never changes (Inventory fixes its name and price when it lists it),
        # so an entry once read stays true, and an order need not load it again.
        self._entries: dict[UUID, CatalogueEntry] = {}

    @handles(PlaceOrder)
    def place_order(self, command: PlaceOrder) -> UUID:
        """Place the order; repeating the same command returns the same order id."""
        lines = self._price(command.items)
        order_id = command.order_id
        self.execute(
            command,
            lambda: [
                Order.place(
                    command.command_id, command.customer_id, lines, command.shipping_address
                )
            ],
            correlation_id=order_id,
        )
        return order_id

    @handles(RequestCancellation)
    def request_cancellation(self, command: RequestCancellation) -> bool:
        return self._on_order(command, lambda order: order.request_cancellation(command.reason))

    @handles(CompleteOrder)
    def complete_order(self, command: CompleteOrder) -> bool:
        return self._on_order(command, lambda order: order.complete())

    @handles(CancelOrder)
    def cancel_order(self, command: CancelOrder) -> bool:
        return self._on_order(command, lambda order: order.cancel(command.reason))

    @handles(ForgetCustomer)
    def forget_customer(self, command: ForgetCustomer) -> bool:
        """Mark every order of the customer erased, and record the forgetting, in one transaction.

        Asked again, it erases only orders placed since, and records nothing when there are none.
        Deleting the customer's key, which makes the erasure true of the stored events, is the
        caller's part (`infra.forgetting`).
        """

        def decide() -> list[Aggregate]:
            orders = [self.get_order(order_id) for order_id in self.orders_of(command.customer_id)]
            for order in orders:
                order.erase_personal_data(command.requested_by)
            changed: list[Aggregate] = [order for order in orders if order.pending_events]
            forgetting = self.find(Forgetting.create_id(command.customer_id), Forgetting)
            if forgetting is None:
                changed.append(Forgetting.record(command.customer_id, command.requested_by))
            elif changed:
                forgetting.repeat(command.requested_by)
                changed.append(forgetting)
            return changed

        return self.execute(command, decide)

    def hear_listing(self, fact: ProductListed, tracking: Tracking) -> bool:
        """Keep the product Inventory listed, once per tracking row (its origin in Inventory's log).

        Returns False for a redelivery. A product already heard, through another row, is left as it is.
        """

        def decide() -> list[Product]:
            if self.find(Product.create_id(fact.product_id), Product) is not None:
                return []
            return [Product.hear(fact.product_id, fact.name, fact.price)]

        origin = f"{tracking.application_name}:{tracking.notification_id}"
        return self.execute_once(tracking, decide, correlation_id=None, causation_id=origin,
                                 message="ProductListed")

    def catalogue(self, product_ids: Iterable[UUID]) -> Mapping[UUID, CatalogueEntry]:
        """The products heard of among `product_ids`, from Orders' own store; unknown ids are left out."""
        entries = {}
        for product_id in product_ids:
            entry = self._entries.get(product_id)
            if entry is None and (product := self.find(Product.create_id(product_id), Product)) is not None:
                entry = CatalogueEntry(product_id=product_id, name=product.name, price=product.price)
                self._entries[product_id] = entry
            if entry is not None:
                entries[product_id] = entry
        return entries

    def was_forgotten(self, customer_id: UUID) -> bool:
        return self.find(Forgetting.create_id(customer_id), Forgetting) is not None

    def orders_of(self, customer_id: UUID) -> list[UUID]:
        """Every order the customer placed, oldest first: read from the log, for the rare question."""
        found: list[UUID] = []
        decode = self.mapper.transcoder.decode  # the customer's id is never sealed: no key is asked for

        def take(window: Sequence[Notification]) -> None:
            found.extend(UUID(str(n.originator_id)) for n in window
                         if decode(n.state).get("customer_id") == str(customer_id))

        self.follower(window=1000, topics=[PLACED_TOPIC], woken_by_saves=False).catch_up(0, take)
        return found

    def order_streams(self, order_id: UUID) -> dict[str, UUID]:
        return {"order": order_id}

    def get_order(self, order_id: UUID, *, version: int | None = None) -> Order:
        order = self.find(order_id, Order, version=version)
        if order is None:
            raise OrderNotFoundError(f"no order {order_id}", field="order_id")
        return order

    def _on_order(self, command: RequestCancellation | CompleteOrder | CancelOrder,
                  change: Callable[[Order], None]) -> bool:
        def decide() -> list[Order]:
            order = self.get_order(command.order_id)
            change(order)
            return [order]

        return self.execute(command, decide, correlation_id=command.order_id)

    def _price(self, items: list[OrderItem]) -> list[OrderLine]:
        entries = self.catalogue(item.product_id for item in items)
        lines = []
        for index, item in enumerate(items):
            entry = entries.get(item.product_id)
            if entry is None:
                raise UnknownProductError(
                    f"no product {item.product_id} in the catalogue",
                    field=f"items[{index}].product_id",
                )
            if item.price is not None and item.price != entry.price.amount:
                raise PriceMismatchError(
                    f"price {item.price} differs from the catalogue price {entry.price.amount}",
                    field=f"items[{index}].price",
                )
            lines.append(
                OrderLine(product_id=item.product_id, quantity=item.quantity, unit_price=entry.price)
            )
        return lines

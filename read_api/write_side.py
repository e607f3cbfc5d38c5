"""The write side as the API calls it: commands sent, aggregates read, streams audited.

The applications are synchronous and block on their store, so every call runs
in a worker thread and the event loop keeps serving other requests meanwhile.
A command that keeps conflicting with other writers (`ConcurrencyError`) is
tried again with backoff, waiting on the event loop rather than in the thread.
Aggregates are turned into the same row shapes the projections produce, so a
resolver does not care whether an answer came from a read model or from the
event store (read-your-writes fallback, audits).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import ParamSpec, TypeVar
from uuid import UUID

import stamina

from commands.audit.timeline import RecordedEvent, as_of, find_stream, history
from commands.command import ConcurrencyError
from commands.inventory import Restock
from commands.orders import PlaceOrder, RequestCancellation
from commands.privacy import Forgotten, forget_customer
from domain.base import NotFoundError
from domain.order import Order, OrderStatus
from domain.stock import Stock
from projections.read_model import AddressRow, OrderItemRow, OrderRow, ParkedMessage, ProductRow
from read_api.integrity import StreamIntegrityReport, order_integrity, stream_integrity
from read_api.ports import DeadLetterDesk, WriteSystem

P = ParamSpec("P")
T = TypeVar("T")


def retried_on_conflict(command: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Try a command again, a few times within a few seconds, while other writers keep winning."""
    return stamina.retry(on=ConcurrencyError, attempts=5, timeout=5.0, wait_initial=0.01, wait_jitter=0.05,
                         wait_max=0.5)(command)


class BusUnavailableError(RuntimeError):
    """This API was built without a message bus, so parked messages cannot be reached."""


class WriteSide:
    """Sends the API's commands and reads the event store, off the event loop."""

    def __init__(self, system: WriteSystem, bus: DeadLetterDesk | None = None) -> None:
        self._system = system
        self._bus = bus

    @retried_on_conflict
    async def place_order(self, command: PlaceOrder) -> UUID:
        return await asyncio.to_thread(self._system.orders.place_order, command)

    @retried_on_conflict
    async def request_cancellation(self, command: RequestCancellation) -> int:
        """Ask for the order to be cancelled; returns the order's version afterwards."""

        def request() -> int:
            self._system.orders.request_cancellation(command)
            return self._system.orders.get_order(command.order_id).version

        return await asyncio.to_thread(request)

    async def forget_customer(self, customer_id: UUID, requested_by: str) -> Forgotten:
        """Forget the customer (`commands.privacy`): in-flight orders end first, then the key goes."""
        keys = self._system.personal_data
        return await forget_customer(self._system.orders, keys, customer_id, requested_by)

    @retried_on_conflict
    async def retry_saga(self, order_id: UUID, requested_by: str) -> int:
        """Resume the order's saga that NEEDS_ATTENTION; returns the saga's version afterwards."""
        return await asyncio.to_thread(self._system.sagas.retry_saga, order_id, requested_by)

    @retried_on_conflict
    async def restock(self, command: Restock) -> ProductRow:
        def restock() -> ProductRow:
            self._system.inventory.restock(command)
            return product_row(self._system.inventory.get_stock(command.product_id))

        return await asyncio.to_thread(restock)

    async def order(
        self, order_id: UUID, *, version: int | None = None, at: datetime | None = None
    ) -> OrderRow | None:
        """The order as its own stream tells it: now, at a version, or at a moment; None if it was not."""

        def read() -> OrderRow | None:
            orders = self._system.orders
            try:
                order = as_of(orders, order_id, Order, version=version, at=at)
            except NotFoundError:
                return None
            entries = orders.catalogue(line.product_id for line in order.lines)
            names = {product_id: entry.name for product_id, entry in entries.items()}
            return order_row(order, names)

        return await asyncio.to_thread(read)

    async def history(
        self, stream_id: UUID, *, from_version: int | None = None, to_version: int | None = None,
        after: int | None = None, limit: int | None = None,
    ) -> list[RecordedEvent]:
        """One stream's events in order, from whichever application holds it.

        Versions are inclusive; `after` is the version of the last event already
        read (a page's end), and `limit` how many to read at most.
        """
        if after is not None:
            from_version = max(after + 1, from_version or 1)

        def read() -> list[RecordedEvent]:
            found = find_stream(self._system.applications, stream_id)
            if found is None:
                return []
            return history(found.application, stream_id, from_version=from_version, to_version=to_version,
                           limit=limit)

        return await asyncio.to_thread(read)

    async def stream_integrity(self, stream_id: UUID) -> StreamIntegrityReport | None:
        """Whether the stream's hash chain holds (`read_api.integrity`); None if no application holds it."""
        return await asyncio.to_thread(stream_integrity, self._system.applications, stream_id)

    async def order_integrity(self, order_id: UUID) -> list[tuple[str, UUID, StreamIntegrityReport | None]]:
        """Each stream of the order: its kind, its id and whether its chain holds."""
        return await asyncio.to_thread(order_integrity, self._system.applications, order_id)

    @property
    def has_bus(self) -> bool:
        return self._bus is not None

    async def dead_letters(self, queue: str | None = None) -> Sequence[ParkedMessage]:
        if self._bus is None:
            raise BusUnavailableError("this API has no message bus to list parked messages from")
        return await self._bus.dead_letters(queue)

    async def redrive(self, dead_letter_id: str) -> bool:
        if self._bus is None:
            raise BusUnavailableError("this API has no message bus to re-drive from")
        return await self._bus.redrive(dead_letter_id)


def order_row(order: Order, names: Mapping[UUID, str]) -> OrderRow:
    """An order aggregate in the read model's shape; `names` are the products' catalogue names."""
    address = order.shipping_address
    return OrderRow(
        id=order.id,
        customer_id=order.customer_id,
        status=str(order.status),
        total_amount=order.total.amount,
        currency=order.total.currency,
        items=tuple(
            OrderItemRow(
                product_id=line.product_id,
                product_name=names.get(line.product_id, ""),
                quantity=line.quantity,
                unit_price=line.unit_price.amount,
            )
            for line in order.lines
        ),
        shipping_address=AddressRow(
            street=address.street, city=address.city, state=address.state,
            zip_code=address.zip_code, country=address.country,
        ),
        failure_reason=order.cancellation_reason if order.status is OrderStatus.CANCELLED else None,
        created_at=order.created_on,
        updated_at=order.modified_on,
        version=order.version,
    )


def product_row(stock: Stock) -> ProductRow:
    return ProductRow(
        id=stock.id, name=stock.name, price=stock.price.amount, currency=stock.price.currency,
        on_hand=stock.on_hand, reserved=stock.reserved,
    )

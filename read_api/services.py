"""What the API does, whichever door a request came through (GraphQL or the old REST routes).

Each operation validates its input into a command (a bad input raises a
`DomainError` naming the field and writes nothing), sends it to the write side,
and answers read-your-writes: it waits, boundedly, for the projection to reach
the version it wrote, and answers from the event store if the projection is late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from commands.command import parse_command
from commands.inventory import Restock
from commands.orders import OrderNotFoundError, PlaceOrder, RequestCancellation
from commands.privacy import Forgotten
from domain.base import ValidationError
from projections.read_model import OrderRow, OrderView, ParkedMessage, ProductRow, ReadModel, SagaRow
from read_api.identity import Authenticator
from read_api.permissions import Access
from read_api.quota import SubscriptionQuota
from read_api.write_side import WriteSide

MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class Services:
    """Everything a request handler needs, built once per app.

    Operations on orders take the caller's `Access`: it decides for whom an
    order may be placed and which orders exist as far as the caller can tell.
    """

    read_model: ReadModel
    write: WriteSide
    authenticator: Authenticator = field(default_factory=Authenticator)
    read_your_writes_timeout: float = 1.0
    subscriptions: SubscriptionQuota = field(default_factory=SubscriptionQuota)

    async def place_order(
        self, access: Access, data: Mapping[str, Any], idempotency_key: str | None = None
    ) -> OrderRow:
        """Place an order from the client's fields (snake_case); the same key returns the first order."""
        fields = {key: data.get(key) for key in ("customer_id", "items", "shipping_address")}
        fields["customer_id"] = access.placing_for(fields["customer_id"])
        if idempotency_key is not None:
            fields["command_id"] = placement_id(str(fields["customer_id"]), idempotency_key)
        command = parse_command(PlaceOrder, fields)
        if idempotency_key is not None:
            placed = await self.write.order(command.order_id)
            if placed is not None:
                return placed
        order_id = await self.write.place_order(command)
        return await self.order_after_write(order_id, version=1)

    async def request_cancellation(self, access: Access, order_id: str, reason: str | None) -> OrderRow:
        fields: dict[str, Any] = {"order_id": order_id}
        if reason is not None:
            fields["reason"] = reason
        command = parse_command(RequestCancellation, fields)
        if not access.sees_every_order and await self.find_order(access, command.order_id) is None:
            # Refused exactly as the write side refuses an order that does not exist.
            raise OrderNotFoundError(f"no order {command.order_id}", field="order_id")
        version = await self.write.request_cancellation(command)
        return await self.order_after_write(command.order_id, version=version)

    async def restock(self, product_id: str, quantity: int) -> ProductRow:
        command = parse_command(Restock, {"product_id": product_id, "quantity": quantity})
        return await self.write.restock(command)

    async def forget_customer(self, access: Access, customer_id: str) -> Forgotten:
        """Forget a customer: their orders in flight end first, then every view shows their data erased."""
        try:
            subject = UUID(str(customer_id))
        except ValueError:
            raise ValidationError(f"{customer_id!r} is not a customer id", field="customer_id") from None
        return await self.write.forget_customer(subject, access.principal.subject or "an admin")

    async def retry_saga(self, access: Access, order_id: str) -> SagaRow | None:
        """Resume a saga that NEEDS_ATTENTION: its stuck undoing is sent again, with fresh attempts."""
        order = parse_uuid(order_id, "order_id")
        version = await self.write.retry_saga(order, access.principal.subject or "an admin")
        return await self.saga_after_write(order, version=version)

    async def saga_after_write(self, order_id: UUID, *, version: int) -> SagaRow | None:
        """The saga once the projection shows `version`, or as far as it got when the wait ends."""
        waited, step, row = 0.0, 0.05, None
        while waited < self.read_your_writes_timeout:
            row = (await self.read_model.sagas_by_order([order_id])).get(order_id)
            if row is not None and row.timeline and row.timeline[-1].version >= version:
                return row
            await asyncio.sleep(step)
            waited += step
        return row

    async def order_after_write(self, order_id: UUID, *, version: int) -> OrderRow:
        """The order once the projection shows `version`, or as the event store has it if the wait ends."""
        row = await self.read_model.wait_for_order(order_id, version, self.read_your_writes_timeout)
        if row is None:
            row = await self.write.order(order_id)
        if row is None:  # the write just succeeded, so its stream exists
            raise LookupError(f"order {order_id} was written but cannot be read back")
        return row

    async def dead_letters(self, queue: str | None) -> Sequence[ParkedMessage]:
        """Parked messages as the bus has them now (a re-drive shows at once), else the read model's copy."""
        if self.write.has_bus:
            return await self.write.dead_letters(queue)
        return await self.read_model.dead_letters(queue)

    async def find_order(
        self, access: Access, order_id: UUID, *, beyond: Callable[[], None] | None = None,
    ) -> OrderRow | None:
        """The projected order, or from the event store if too new for the projection; None if not visible.

        `beyond` is called when the read model did not have it and the event store was asked.
        """
        row = (await self.read_model.orders_by_id([order_id])).get(order_id)
        return await self._visible(access, order_id, row, beyond)

    async def find_order_view(
        self, access: Access, order_id: UUID, *, beyond: Callable[[], None] | None = None,
    ) -> tuple[OrderRow | None, OrderView | None]:
        """`find_order`'s answer, read with the order's payment, shipment and saga in one round trip.

        Beside it, the order as the read model holds it, parts and all (None where it holds no row of
        it, or the order is not visible).
        """
        view = (await self.read_model.order_views([order_id])).get(order_id)
        row = await self._visible(access, order_id, None if view is None else view.order, beyond)
        return (row, view) if row is not None else (None, None)

    async def _visible(
        self, access: Access, order_id: UUID, row: OrderRow | None, beyond: Callable[[], None] | None,
    ) -> OrderRow | None:
        if row is None:
            if beyond is not None:
                beyond()
            row = await self.write.order(order_id)
        return row if row is not None and access.sees_order_of(row.customer_id) else None


def placement_id(customer_id: str, idempotency_key: str) -> UUID:
    """The command id an idempotency key stands for, scoped to the customer so keys never collide."""
    key = idempotency_key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationError(
            f"an idempotency key has 1 to {MAX_IDEMPOTENCY_KEY} characters", field="idempotency_key"
        )
    return uuid5(NAMESPACE_URL, f"/api/orders/{customer_id}/{key}")


def parse_uuid(value: str, field: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise ValidationError(f"{value!r} is not a valid id", field=field) from None

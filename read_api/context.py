"""The GraphQL request context: the app's services and DataLoaders built fresh for each request.

The loaders batch every lookup a request makes of one kind into one call of the
read model (the payments of 20 listed orders are one `payments_by_order` call,
not 20), and cache them for that request only, so no answer leaks into another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar
from uuid import UUID

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from projections.read_model import OrderRow, PaymentRow, ProductRow, ReadModel, SagaRow, ShipmentRow
from read_api.services import Services

Row = TypeVar("Row")


def by_key(
    query: Callable[[Sequence[UUID]], Awaitable[Mapping[UUID, Row]]],
) -> Callable[[list[UUID]], Awaitable[list[Row | None]]]:
    """A DataLoader's batch function over a read-model query that answers many ids at once."""

    async def load(keys: list[UUID]) -> list[Row | None]:
        found = await query(keys)
        return [found.get(key) for key in keys]

    return load


class Loaders:
    def __init__(self, read_model: ReadModel) -> None:
        self.orders = DataLoader[UUID, OrderRow | None](load_fn=by_key(read_model.orders_by_id))
        self.payments = DataLoader[UUID, PaymentRow | None](load_fn=by_key(read_model.payments_by_order))
        self.shipments = DataLoader[UUID, ShipmentRow | None](load_fn=by_key(read_model.shipments_by_order))
        self.sagas = DataLoader[UUID, SagaRow | None](load_fn=by_key(read_model.sagas_by_order))
        self.products = DataLoader[UUID, ProductRow | None](load_fn=by_key(read_model.products_by_id))


class Context(BaseContext):
    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.loaders = Loaders(services.read_model)

    def refresh(self) -> None:
        """Forget what was loaded: the next push of a subscription is a new state, not a cached one."""
        self.loaders = Loaders(self.services.read_model)

    @property
    def authorization(self) -> str | None:
        return None if self.request is None else self.request.headers.get("authorization")

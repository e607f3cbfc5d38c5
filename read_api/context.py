"""The GraphQL request context: the caller's access, the app's services, and DataLoaders per request.

The loaders batch every lookup a request makes of one kind into one call of the
read model, and an order's payment, shipment and saga share one (the parts of 20
listed orders are one `order_views` call, not 60), and cache them for that
request only, so no answer leaks into another.
They answer only what the caller may see: an order of another customer, and its
payment, shipment and saga, load as absent, exactly like ones that do not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar
from uuid import UUID

from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from projections.read_model import (
    OrderRow,
    OrderView,
    PaymentRow,
    ProductRow,
    ReadModel,
    SagaRow,
    ShipmentRow,
)
from read_api.answer_cache import verdict_of
from read_api.permissions import Access
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
    def __init__(self, read_model: ReadModel, access: Access) -> None:
        self.access = access
        self._visible_orders: set[UUID] = set()
        """Orders this request has already found visible: their payment, shipment and saga may be shown."""
        self.orders = DataLoader[UUID, OrderRow | None](
            load_fn=self._visible(by_key(read_model.orders_by_id)))
        self.views = DataLoader[UUID, OrderView | None](load_fn=by_key(read_model.order_views))
        """Orders with their payment, shipment and saga: the three loaders below share its one round trip."""
        self.payments = DataLoader[UUID, PaymentRow | None](
            load_fn=self._parts(lambda view: view.payment, read_model.payments_by_order))
        self.shipments = DataLoader[UUID, ShipmentRow | None](
            load_fn=self._parts(lambda view: view.shipment, read_model.shipments_by_order))
        self.sagas = DataLoader[UUID, SagaRow | None](
            load_fn=self._parts(lambda view: view.saga, read_model.sagas_by_order))
        self.products = DataLoader[UUID, ProductRow | None](load_fn=by_key(read_model.products_by_id))

    def _visible(
        self, load: Callable[[list[UUID]], Awaitable[list[OrderRow | None]]],
    ) -> Callable[[list[UUID]], Awaitable[list[OrderRow | None]]]:
        async def visible(keys: list[UUID]) -> list[OrderRow | None]:
            return [self._if_visible(row) for row in await load(keys)]

        return visible

    def _if_visible(self, row: OrderRow | None) -> OrderRow | None:
        if row is None or not self.access.sees_order_of(row.customer_id):
            return None
        self._visible_orders.add(row.id)
        return row

    def remember(self, row: OrderRow, view: OrderView | None = None) -> None:
        """An order read some other way (a page, a push): loading it, or its parts, needs no query.

        `view` is the order as the read model holds it, parts and all, when it was read so.
        """
        if self._if_visible(row) is not None:
            self.orders.prime(row.id, row)
            if view is not None:
                self.views.prime(row.id, view)

    def _parts(
        self, part: Callable[[OrderView], Row | None],
        alone: Callable[[Sequence[UUID]], Awaitable[Mapping[UUID, Row]]],
    ) -> Callable[[list[UUID]], Awaitable[list[Row | None]]]:
        """Rows keyed by order id, read with their orders, shown only where the order itself is visible.

        An order the read model holds no row of (too new for it, read from the event store) may
        have its parts projected already: they are asked for `alone`.
        """

        async def of_visible(keys: list[UUID]) -> list[Row | None]:
            views = await self.views.load_many(keys)
            missing = [key for key, view in zip(keys, views, strict=True) if view is None]
            found = await alone(missing) if missing else {}
            rows: list[Row | None] = []
            for key, view in zip(keys, views, strict=True):
                if view is not None:
                    self._if_visible(view.order)
                row = found.get(key) if view is None else part(view)
                rows.append(row if self.access.sees_every_order or key in self._visible_orders else None)
            return rows

        return of_visible


class Context(BaseContext):
    def __init__(self, services: Services, access: Access | None = None) -> None:
        super().__init__()
        self.services = services
        self._access = access
        self._loaders: Loaders | None = None

    @property
    def access(self) -> Access:
        """The caller's access: from the request's credential, or a WebSocket's `connection_init`."""
        if self._access is None:
            state = {} if self.request is None else self.request.scope.get("state") or {}
            found = state.get("access")
            self._access = found if isinstance(found, Access) else Access.of(
                self.services.authenticator.principal, self.authorization)
        return self._access

    @access.setter
    def access(self, access: Access) -> None:
        self._access = access
        self._loaders = None

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.services.read_model, self.access)
        return self._loaders

    def refresh(self) -> None:
        """Forget what was loaded: the next push of a subscription is a new state, not a cached one."""
        self._loaders = None

    def reads_beyond_read_model(self) -> None:
        """This request's answer read the event store: it may not be kept as the read model's."""
        verdict = verdict_of(None if self.request is None else self.request.scope)
        if verdict is not None:
            verdict.veto()

    @property
    def authorization(self) -> str | None:
        return None if self.request is None else self.request.headers.get("authorization")

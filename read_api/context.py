"""The GraphQL request context: the caller's access, the app's services, and DataLoaders per request.

The loaders batch every lookup a request makes of one kind into one call of the
read model (the payments of 20 listed orders are one `payments_by_order` call,
not 20), and cache them for that request only, so no answer leaks into another.
They answer only what the caller may see: an order of another customer, and its
payment, shipment and saga, load as absent, exactly like ones that do not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import TypeVar
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

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


Shown = TypeVar("Shown")


def at_once(
    loader: DataLoader[UUID, Row | None], key: UUID, shown: Callable[[Row], Shown],
) -> Shown | Awaitable[Shown | None] | None:
    """What `loader` holds for `key`, shown: at once if this request has it already, else an awaitable.

    A part primed with its order (`Loaders.remember`) needs no coroutine: graphql-core
    runs each awaitable field as a task of its own, and an order's three parts were
    three tasks a request.
    """
    held = loader.cache_map.get(key) if loader.cache else None
    if held is not None and held.done() and not held.cancelled() and held.exception() is None:
        row = held.result()
        return None if row is None else shown(row)
    return _loaded(loader, key, shown)


async def _loaded(
    loader: DataLoader[UUID, Row | None], key: UUID, shown: Callable[[Row], Shown],
) -> Shown | None:
    row = await loader.load(key)
    return None if row is None else shown(row)


class Visibility:
    """Which orders this request's caller may see, of those the request has read so far."""

    def __init__(self, access: Access) -> None:
        self.access = access
        self.orders: set[UUID] = set()
        """Orders this request has already found visible: their payment, shipment and saga need no check."""

    def of(self, row: OrderRow | None) -> OrderRow | None:
        """The row if its caller may see it (noting so), else None."""
        if row is None or not self.access.sees_order_of(row.customer_id):
            return None
        self.orders.add(row.id)
        return row


def _visible(
    visibility: Visibility, load: Callable[[list[UUID]], Awaitable[list[OrderRow | None]]],
) -> Callable[[list[UUID]], Awaitable[list[OrderRow | None]]]:
    async def visible(keys: list[UUID]) -> list[OrderRow | None]:
        return [visibility.of(row) for row in await load(keys)]

    return visible


def _of_visible_orders(
    visibility: Visibility, orders: DataLoader[UUID, OrderRow | None],
    load: Callable[[list[UUID]], Awaitable[list[Row | None]]],
) -> Callable[[list[UUID]], Awaitable[list[Row | None]]]:
    """Rows keyed by order id, shown only where the order itself is visible."""
    if visibility.access.sees_every_order:
        return load

    async def of_visible(keys: list[UUID]) -> list[Row | None]:
        unknown = [key for key in keys if key not in visibility.orders]
        if unknown:
            await orders.load_many(unknown)  # notes which of them are visible
        rows = await load(keys)
        return [row if key in visibility.orders else None for key, row in zip(keys, rows, strict=True)]

    return of_visible


class Loaders:
    """A request's DataLoaders.

    No loader's function refers back to the loaders (only to the request's
    `Visibility` and the orders' loader), so a request's reads hold no reference
    cycle and are freed as soon as it is answered, not by the cycle collector.
    """

    def __init__(self, read_model: ReadModel, access: Access) -> None:
        self.access = access
        self._read_model = read_model
        self._visibility = visibility = Visibility(access)
        self.orders = DataLoader[UUID, OrderRow | None](
            load_fn=_visible(visibility, by_key(read_model.orders_by_id)))

    # The other loaders are made when first used: most requests read one or two kinds of row.
    @cached_property
    def payments(self) -> DataLoader[UUID, PaymentRow | None]:
        return DataLoader(load_fn=self._shown_with_their_orders(self._read_model.payments_by_order))

    @cached_property
    def shipments(self) -> DataLoader[UUID, ShipmentRow | None]:
        return DataLoader(load_fn=self._shown_with_their_orders(self._read_model.shipments_by_order))

    @cached_property
    def sagas(self) -> DataLoader[UUID, SagaRow | None]:
        return DataLoader(load_fn=self._shown_with_their_orders(self._read_model.sagas_by_order))

    @cached_property
    def products(self) -> DataLoader[UUID, ProductRow | None]:
        return DataLoader(load_fn=by_key(self._read_model.products_by_id))

    def _shown_with_their_orders(
        self, read: Callable[[Sequence[UUID]], Awaitable[Mapping[UUID, Row]]],
    ) -> Callable[[list[UUID]], Awaitable[list[Row | None]]]:
        return _of_visible_orders(self._visibility, self.orders, by_key(read))

    def remember(self, row: OrderRow, view: OrderView | None = None) -> None:
        """An order read some other way (a page, a push): loading it, or its parts, needs no query.

        `view` is the order as the read model holds it, read with its payment, shipment and saga:
        loading those needs no query either.
        """
        if self._visibility.of(row) is not None:
            self.orders.prime(row.id, row)
            if view is not None:
                self.payments.prime(row.id, view.payment)
                self.shipments.prime(row.id, view.shipment)
                self.sagas.prime(row.id, view.saga)


class Context:
    def __init__(
        self, services: Services, access: Access | None = None, *,
        request: Request | WebSocket | None = None, response: Response | WebSocket | None = None,
    ) -> None:
        self.services = services
        self.request = request
        """The HTTP request, or the WebSocket of a subscription; None outside a request (a test's call)."""
        self.response = response
        self.connection_params: object = None
        """A WebSocket's `connection_init` payload, as Strawberry leaves it."""
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

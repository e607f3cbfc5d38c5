"""Talking to the API in tests: an in-process HTTP client, GraphQL calls, and a read model of rows by hand."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
from fastapi import FastAPI
from starlette.types import Message

from infra.bootstrap import System
from infra.messaging.bus import Bus
from infra.runtime import Runtime
from infra.settings import Settings
from projections.queries import MAX_PAGE
from projections.read_model import (
    AddressRow,
    DeadLetterRow,
    NotificationRow,
    OrderCursor,
    OrderItemRow,
    OrderPage,
    OrderRow,
    OrderView,
    PaymentRow,
    ProductRow,
    ProjectionStatusRow,
    SagaRow,
    SagaStepRow,
    ShipmentRow,
)
from projections.runner import Projector
from read_api.app import create_app
from tests.saga_harness import WORKER_ROLES, started, test_bus

ADMIN_TOKEN = "s3cret-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@asynccontextmanager
async def api_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


async def asgi_post(app: FastAPI, path: str, payload: dict[str, Any]) -> bytes:
    """POST `payload` as JSON to the ASGI app itself, as a server would; the answer's body (status 200)."""
    body = json.dumps(payload).encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"api.test"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 50000), "server": ("api.test", 80)}
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop() if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 200, sent
    return b"".join(message.get("body", b"") for message in sent[1:])


async def graphql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The whole GraphQL answer (`data` and any `errors`), after checking the HTTP status."""
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}},
                                 headers=headers or {})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def data_of(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> dict[str, Any]:
    answer = await graphql(client, query, variables, headers)
    assert "errors" not in answer, answer["errors"]
    data: dict[str, Any] = answer["data"]
    return data


def order_row(
    *, customer_id: UUID | None = None, created_at: datetime = T0, status: str = "PENDING"
) -> OrderRow:
    return OrderRow(
        id=uuid4(), customer_id=customer_id or uuid4(), status=status, total_amount=Decimal("49.99"),
        currency="USD",
        items=(OrderItemRow(product_id=uuid4(), product_name="Wireless Mouse", quantity=1,
                            unit_price=Decimal("49.99")),),
        shipping_address=AddressRow(street="1 Main St", city="Springfield", state="IL", zip_code="62701",
                                    country="US"),
        failure_reason=None, created_at=created_at, updated_at=created_at, version=1,
    )


@dataclass
class RowsReadModel:
    """A ReadModel over rows a test sets by hand; it counts how often each query is called.

    It answers as `projections.queries.StoreReadModel` does (tests/integration/test_read_model_contract.py
    runs the same checks on both): newest first, at most MAX_PAGE orders a page, products by name, and
    an order's items named as the stock levels name their products, where the product is known.
    """

    orders_rows: dict[UUID, OrderRow] = field(default_factory=dict)
    payments: dict[UUID, PaymentRow] = field(default_factory=dict)
    shipments: dict[UUID, ShipmentRow] = field(default_factory=dict)
    notifications: dict[UUID, NotificationRow] = field(default_factory=dict)
    sagas: dict[UUID, SagaRow] = field(default_factory=dict)
    product_rows: dict[UUID, ProductRow] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    def add_order(self, row: OrderRow, *, fulfilled: bool = False) -> OrderRow:
        self.orders_rows[row.id] = row
        if fulfilled:
            self.payments[row.id] = PaymentRow(
                id=uuid4(), order_id=row.id, status="COMPLETED", amount=row.total_amount, currency="USD",
                transaction_id="txn_1", refunded_amount=Decimal("0"), created_at=row.created_at,
                updated_at=row.updated_at, processed_at=row.created_at)
            self.shipments[row.id] = ShipmentRow(
                id=uuid4(), order_id=row.id, status="PREPARING", tracking_number="TRK1", carrier=None,
                created_at=row.created_at, updated_at=row.updated_at)
            steps = tuple(SagaStepRow(name=n, status="SUCCEEDED", attempts=1)
                          for n in ("payment", "inventory", "shipping", "notification"))
            self.sagas[row.id] = SagaRow(id=uuid4(), order_id=row.id, status="COMPLETED", current_step=None,
                                         steps=steps, updated_at=row.updated_at)
        return row

    async def orders_by_id(self, ids: Sequence[UUID]) -> dict[UUID, OrderRow]:
        self.calls["orders_by_id"] += 1
        return {i: self._named(self.orders_rows[i]) for i in ids if i in self.orders_rows}

    async def order_views(self, ids: Sequence[UUID]) -> dict[UUID, OrderView]:
        self.calls["order_views"] += 1
        return {i: OrderView(self._named(row) if (row := self.orders_rows[i]).version > 0 else None,
                             self.payments.get(i), self.shipments.get(i), self.sagas.get(i))
                for i in ids if i in self.orders_rows}

    async def orders(self, *, customer_id: UUID | None = None, status: str | None = None, first: int = 20,
                     after: OrderCursor | None = None, count: bool = True, offset: int = 0) -> OrderPage:
        self.calls["orders"] += 1
        rows = self._matching(customer_id, status)
        total = len(rows) if count else None
        if after is not None:
            rows = [r for r in rows if (r.created_at, r.id) < (after.created_at, after.id)]
        rows = rows[max(0, offset):]
        limit = max(0, min(first, MAX_PAGE))
        page = tuple(self._named(r) for r in rows[:limit])
        return OrderPage(rows=page, has_next_page=len(rows) > limit, total_count=total)

    async def count_orders(self, *, customer_id: UUID | None = None, status: str | None = None) -> int:
        self.calls["count_orders"] += 1
        return len(self._matching(customer_id, status))

    def _matching(self, customer_id: UUID | None, status: str | None) -> list[OrderRow]:
        return sorted(
            (r for r in self.orders_rows.values()
             if customer_id in (None, r.customer_id) and status in (None, r.status)),
            key=lambda r: (r.created_at, r.id), reverse=True,
        )

    def _named(self, row: OrderRow) -> OrderRow:
        known = self.product_rows
        items = tuple(replace(i, product_name=known[i.product_id].name) if i.product_id in known else i
                      for i in row.items)
        return replace(row, items=items)

    async def payments_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, PaymentRow]:
        self.calls["payments_by_order"] += 1
        return {i: self.payments[i] for i in order_ids if i in self.payments}

    async def shipments_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, ShipmentRow]:
        self.calls["shipments_by_order"] += 1
        return {i: self.shipments[i] for i in order_ids if i in self.shipments}

    async def notifications_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, NotificationRow]:
        self.calls["notifications_by_order"] += 1
        return {i: self.notifications[i] for i in order_ids if i in self.notifications}

    async def sagas_by_order(self, order_ids: Sequence[UUID]) -> dict[UUID, SagaRow]:
        self.calls["sagas_by_order"] += 1
        return {i: self.sagas[i] for i in order_ids if i in self.sagas}

    async def list_sagas(
        self, *, status: str | None = None, first: int = 20, after: UUID | None = None
    ) -> list[SagaRow]:
        rows = sorted(self.sagas.values(), key=lambda s: str(s.id))
        rows = [s for s in rows if status in (None, s.status) and (after is None or str(s.id) > str(after))]
        return rows[:first]

    async def products(self) -> list[ProductRow]:
        return sorted(self.product_rows.values(), key=lambda p: (p.name, p.id))

    async def products_by_id(self, ids: Sequence[UUID]) -> dict[UUID, ProductRow]:
        return {i: self.product_rows[i] for i in ids if i in self.product_rows}

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetterRow]:
        return []

    async def projection_status(self) -> list[ProjectionStatusRow]:
        return [ProjectionStatusRow(name="order_summary", position=len(self.orders_rows), lag=0)]

    async def wait_for_order(
        self, order_id: UUID, version: int, timeout: float  # noqa: ASYNC109 - the ReadModel protocol's name
    ) -> OrderRow | None:
        row = self.orders_rows.get(order_id)
        return self._named(row) if row is not None and row.version >= version else None

    async def order_changes(self, order_id: UUID) -> AsyncIterator[OrderRow]:
        if order_id in self.orders_rows:
            yield self._named(self.orders_rows[order_id])
        await asyncio.sleep(3600)


@dataclass
class Served:
    """The whole system running, its projector following it, and a client of the API in front."""

    system: System
    client: httpx.AsyncClient
    bus: Bus
    projector: Projector
    app: FastAPI


@asynccontextmanager
async def serving(
    settings: Settings, bus: Bus | None = None, *, roles: Iterable[str] = WORKER_ROLES, **overrides: Any
) -> AsyncIterator[Served]:
    """The API over the running system; `roles=()` runs no worker, so orders stay as placed."""
    bus = bus or test_bus()
    settings = settings.model_copy(update={"admin_token": ADMIN_TOKEN})
    async with started(settings, bus, roles=(*roles, "projector"), before=_caught_up, **overrides) as runtime:
        assert runtime.projector is not None
        app = create_app(system=runtime.system, read_model=runtime.projector.read_model(), bus=bus,
                         settings=settings)
        async with api_client(app) as client:
            yield Served(runtime.system, client, bus, runtime.projector, app)


async def _caught_up(runtime: Runtime) -> None:
    """The seed catalogue is projected before the first order, and news is looked for often."""
    assert runtime.projector is not None
    runtime.projector.poll_interval = 0.2
    await runtime.open_read_side()
    await runtime.projector.catch_up()

"""Runs the whole system in the test's event loop and follows orders to their end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

from commands.orders import PlaceOrder
from infra.bootstrap import System, assemble
from infra.messaging.bus import Bus
from infra.messaging.in_process import InProcessBus
from infra.observability.metrics import SagaMetrics
from infra.runtime import CONTEXT_ROLES, Runtime
from infra.settings import Settings
from process_managers.saga import OrderFulfillment
from process_managers.state import SagaStatus
from process_managers.steps import StepName
from tests.fakes import FakeCarrier, FakeGateway, FakeNotifier

WORKER_ROLES = (*CONTEXT_ROLES, "saga", "relay")
FINISHED = (SagaStatus.COMPLETED, SagaStatus.COMPENSATED)
ADDRESS = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701",
           "country": "US"}
LAPTOP = UUID("550e8400-e29b-41d4-a716-446655440001")
MOUSE = UUID("550e8400-e29b-41d4-a716-446655440002")
KEYBOARD = UUID("550e8400-e29b-41d4-a716-446655440004")


def test_bus() -> InProcessBus:
    return InProcessBus(retry_delays=(0.05, 0.1, 0.2))


@asynccontextmanager
async def running(
    settings: Settings, bus: Bus | None = None, *, roles: Iterable[str] = WORKER_ROLES,
    metrics: SagaMetrics | None = None, **overrides: Any
) -> AsyncIterator[System]:
    async with started(settings, bus, roles=roles, metrics=metrics, **overrides) as runtime:
        yield runtime.system


@asynccontextmanager
async def started(
    settings: Settings, bus: Bus | None = None, *, roles: Iterable[str] = WORKER_ROLES,
    metrics: SagaMetrics | None = None, before: Callable[[Runtime], Awaitable[None]] | None = None,
    **overrides: Any
) -> AsyncIterator[Runtime]:
    """The roles running on the seed catalogue; `before` is awaited once they are built, not yet started."""
    # The outside world succeeds unless a test says otherwise.
    world = {"gateway": FakeGateway(), "carrier": FakeCarrier(), "notifier": FakeNotifier()}
    assembly = assemble(settings, roles, bus=bus or test_bus(), metrics=metrics, seed=True,
                        **{**world, **overrides})
    runtime = Runtime(assembly)
    try:
        if before is not None:
            await before(runtime)
        await runtime.start()
        yield runtime
    finally:
        await runtime.stop()
        assembly.system.close()


def place(system: System, *lines: tuple[UUID, int]) -> UUID:
    items = [{"product_id": p, "quantity": q} for p, q in (lines or ((MOUSE, 1),))]
    return system.orders.place_order(
        PlaceOrder(customer_id=uuid4(), items=items, shipping_address=ADDRESS)
    )


async def finished(system: System, order_id: UUID, *, within: float = 30.0) -> OrderFulfillment:
    """The order's saga once it has completed or compensated."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        saga = await asyncio.to_thread(system.sagas.find_saga, order_id)
        if saga is not None and saga.status in FINISHED:
            return saga
        await asyncio.sleep(0.05)
    saga = system.sagas.find_saga(order_id)
    raise AssertionError(f"saga of {order_id} did not finish: {saga and saga.state}")


async def until(check: Callable[[], bool], *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.02)


def step_status(system: System, order_id: UUID, step: str) -> str | None:
    saga = system.sagas.find_saga(order_id)
    if saga is None:
        return None
    return str(saga.steps[StepName(step)].status)


Stack = tuple[Settings, Bus]

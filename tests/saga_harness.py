"""Runs the whole system in the test's event loop and follows orders to their end.

Orders prices from a catalogue of its own, fed by Inventory's listings through the
relay and Orders' catalogue consumer. `hear_catalogue` carries them the same way
for a test that runs neither; `started` waits until Orders has heard the seed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

from commands.inventory import LISTED_TOPIC, SEED_CATALOGUE
from commands.orders import PlaceOrder
from infra.bootstrap import System, assemble
from infra.messaging.bus import Bus, Delivery, Outcome
from infra.messaging.consumers import catalogue_subscription
from infra.messaging.in_process import InProcessBus, topic_matches
from infra.messaging.relay import integration_messages
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
    roles = set(roles)
    try:
        if before is not None:
            await before(runtime)
        if not {"orders", "relay"} <= roles:
            await asyncio.to_thread(hear_catalogue, assembly.system)  # nobody runs to carry it
        await runtime.start()
        await until(lambda: heard_seed(assembly.system))
        yield runtime
    finally:
        await runtime.stop()
        assembly.system.close()


def hear_catalogue(system: System) -> list[Outcome]:
    """Carry Inventory's listings to Orders as the relay and Orders' catalogue consumer would.

    The relay's own translation of Inventory's log, handed to the consumer's own handler,
    without a bus: what a test needs that places orders with neither running. A listing
    carried twice changes nothing, as with a redelivery.
    """
    inventory = system.inventory
    listed = inventory.recorder.select_notifications(0, 100_000, topics=[LISTED_TOPIC])
    subscription = catalogue_subscription(system.orders, system.orders)
    deliveries = [
        Delivery(envelope)
        for notification in listed
        for _, envelope in integration_messages(
            inventory.name, notification, inventory.mapper.to_domain_event(notification))
        if any(topic_matches(key, envelope.routing_key) for key in subscription.routing_keys)
    ]
    # The handler is a coroutine; a thread of its own runs it whether or not a loop runs here.
    async def handle() -> Sequence[Outcome]:
        return await subscription.handler(deliveries)

    with ThreadPoolExecutor(max_workers=1) as thread:
        return list(thread.submit(asyncio.run, handle()).result())


def heard_seed(system: System) -> bool:
    """Whether Orders has heard of every seed product."""
    ids = [product.product_id for product in SEED_CATALOGUE]
    return len(system.orders.catalogue(ids)) == len(ids)


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

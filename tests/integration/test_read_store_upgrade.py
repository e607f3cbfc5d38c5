"""A read store of the previous version keeps working: tables whose columns changed are rebuilt at start."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from commands.payments import ChargePayment, RefundPayment
from commands.shipping import CreateShipment
from domain.values import Address
from infra.bootstrap import System, bootstrap
from infra.readstore.opening import read_store_opener
from infra.settings import Settings
from projections import tracking
from projections.runner import Projector
from projections.store import Index, TableSpec
from tests.fakes import FakeCarrier, FakeGateway
from tests.saga_harness import ADDRESS, MOUSE

# The two tables as the previous version made them, before they kept creation times and reasons.
PREVIOUS_PAYMENTS = TableSpec(
    "read_payments",
    (("id", "uuid"), ("order_id", "uuid"), ("status", "text"), ("amount", "money"), ("currency", "text"),
     ("transaction_id", "text"), ("refunded_amount", "money"), ("updated_at", "ts")),
    ("id",), (Index("order_idx", "order_id"),),
)
PREVIOUS_SHIPMENTS = TableSpec(
    "read_shipments",
    (("id", "uuid"), ("order_id", "uuid"), ("status", "text"), ("tracking_number", "text"),
     ("carrier", "text"), ("updated_at", "ts")),
    ("id",), (Index("order_idx", "order_id"),),
)


@pytest.fixture
async def system(store_settings: Settings) -> AsyncIterator[System]:
    built = bootstrap(store_settings, gateway=FakeGateway(), carrier=FakeCarrier())
    await asyncio.to_thread(built.inventory.seed)
    yield built
    built.close()


def projector_of(system: System) -> Projector:
    settings = system.settings
    return Projector(system, store=read_store_opener(settings))


async def test_tables_of_the_previous_version_are_rebuilt_with_the_new_columns_and_the_rest_are_kept(
    system: System, caplog: pytest.LogCaptureFixture,
) -> None:
    order_id, customer_id = uuid4(), uuid4()
    system.payments.charge_payment(ChargePayment(order_id=order_id, customer_id=customer_id,
                                                 amount=Decimal("49.99")))
    system.payments.refund_payment(RefundPayment(order_id=order_id, reason="cancelled by customer"))
    system.shipping.create_shipment(CreateShipment(order_id=order_id, address=Address(**ADDRESS)))
    async with projector_of(system) as current:
        await current.catch_up()
        store = current.store
        # Back to the previous version: its two tables, with rows it had projected up to the last event.
        async with store.transaction() as tx:
            for previous in (PREVIOUS_PAYMENTS, PREVIOUS_SHIPMENTS):
                await tx.execute(f"DROP TABLE {previous.name}")
                for statement in previous.create_statements(store.dialect):
                    await tx.execute(statement)
            await tx.execute(PREVIOUS_PAYMENTS.upsert_statement(), uuid4(), order_id, "STALE",
                             Decimal("49.99"), "USD", "txn", Decimal("0"), datetime.now(UTC))
            # A mark a replay of the stock levels would overwrite.
            await tx.execute("UPDATE read_products SET name = $1 WHERE id = $2", "kept as it was", MOUSE)
        kept_at = await tracking.all_positions(store)

    with caplog.at_level(logging.WARNING, logger="projections.catalog"):
        async with projector_of(system) as upgraded:
            await upgraded.catch_up()
            positions = await tracking.all_positions(upgraded.store)
            model = upgraded.read_model()
            payment = (await model.payments_by_order([order_id]))[order_id]
            shipment = (await model.shipments_by_order([order_id]))[order_id]
            mouse = (await model.products_by_id([MOUSE]))[MOUSE]

    assert (payment.status, payment.refunded_amount) == ("REFUNDED", Decimal("49.99"))
    assert payment.refund_reference is not None and payment.refunded_at is not None
    assert payment.created_at == payment.processed_at and payment.created_at <= payment.refunded_at
    assert (shipment.status, shipment.failure_reason) == ("PREPARING", None)
    assert shipment.created_at == shipment.updated_at
    rebuilt = [r.getMessage() for r in caplog.records]
    assert len(rebuilt) == 2 and "read_payments" in rebuilt[0] and "read_shipments" in rebuilt[1]
    # Tables whose columns did not change are neither dropped nor replayed.
    assert positions == kept_at and mouse.name == "kept as it was"

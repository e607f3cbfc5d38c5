"""A customer's personal data is stored sealed with their own key, and forgetting them deletes the key.

Read straight from the event tables, no address is in clear text; every reader
(the aggregates, the relay's messages, the audit) sees it opened. Once the key
is deleted the address reads `[erased]` everywhere, in this process and in any
process started later, and a copy of the event tables holds nothing to recover.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

from commands.audit.timeline import timeline
from domain.privacy import ERASED
from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from process_managers.state import SagaStatus
from tests.saga_harness import finished, place, running

pytestmark = pytest.mark.integration

PERSONAL = (b"1 Main St", b"Springfield", b"62701")


def raw_states(system: System) -> list[bytes]:
    """Every stored event's bytes, as the recorders keep them in the event tables."""
    return [
        notification.state
        for app in system.applications
        for notification in app.recorder.select_notifications(0, 100_000, inclusive_of_start=False)
    ]


def customer_of(system: System, order_id: UUID) -> UUID:
    return system.orders.get_order(order_id).customer_id


async def shipped_order(settings: Settings) -> tuple[UUID, UUID]:
    async with running(settings) as system:
        order_id = await asyncio.to_thread(place, system)
        assert (await finished(system, order_id)).status is SagaStatus.COMPLETED
        return order_id, customer_of(system, order_id)


async def test_no_address_is_stored_in_clear_text_and_every_reader_sees_it_opened(
    store_settings: Settings,
) -> None:
    order_id, _ = await shipped_order(store_settings)

    with bootstrap(store_settings) as system:
        stored = raw_states(system)
        assert stored, "the saga recorded events"
        assert not [state for state in stored if any(value in state for value in PERSONAL)]
        assert system.orders.get_order(order_id).shipping_address.city == "Springfield"
        assert system.shipping.get_shipment(order_id).address is not None
        assert system.shipping.get_shipment(order_id).address.street == "1 Main St"  # type: ignore[union-attr]
        told = " ".join(entry.summary for entry in timeline(system.applications, order_id))
        assert "Springfield" in told


async def test_a_forgotten_customer_s_address_reads_erased_everywhere_and_cannot_be_recovered(
    store_settings: Settings,
) -> None:
    order_id, customer_id = await shipped_order(store_settings)
    with bootstrap(store_settings) as system:
        keys = system.personal_data
        assert keys is not None and keys.knows(customer_id)
        before = raw_states(system)

        assert keys.forget(customer_id) is True
        assert keys.forget(customer_id) is False  # once is enough

        assert system.orders.get_order(order_id).shipping_address.street == ERASED
        told = " ".join(entry.summary for entry in timeline(system.applications, order_id))
        assert "Springfield" not in told and ERASED in told

    with bootstrap(store_settings) as later:  # a process started afterwards
        order = later.orders.get_order(order_id)
        assert order.shipping_address.city == ERASED
        assert order.total.amount > 0 and order.lines  # amounts and items stay
        assert later.shipping.get_shipment(order_id).address.city == ERASED  # type: ignore[union-attr]
        saga = later.sagas.get_saga(order_id)
        assert saga.status is SagaStatus.COMPLETED and saga.state.order.shipping_address.city == ERASED
        assert raw_states(later) == before  # the events themselves are untouched: only the key is gone
        assert later.personal_data is not None and not later.personal_data.knows(customer_id)


async def test_a_batch_loading_the_orders_of_several_customers_asks_for_their_keys_once(
    postgres_settings: Settings,
) -> None:
    async with running(postgres_settings) as system:
        order_ids = [await asyncio.to_thread(place, system) for _ in range(3)]  # three customers, three keys

    with bootstrap(postgres_settings) as later:  # a process with no key at hand
        table: Any = later.orders.mapper.personal.table  # type: ignore[attr-defined]
        asked: list[int] = []
        get_many = table.get_many

        def counted(subjects: Any) -> Any:
            asked.append(len(subjects))
            return get_many(subjects)

        table.get_many = counted
        with later.orders.unit_of_work():
            later.orders.preload(order_ids)
            assert {later.orders.get_order(o).shipping_address.city for o in order_ids} == {"Springfield"}
        assert asked == [3]  # one round trip for the three customers' keys

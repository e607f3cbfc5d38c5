"""Orders prices from a catalogue of its own, fed by Inventory's listings, never from Inventory's store."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from commands.inventory import SEED_CATALOGUE, ListProduct
from commands.orders import PlaceOrder
from domain.stock import UnknownProductError
from domain.values import Money
from infra.bootstrap import assemble, bootstrap, migrate
from infra.messaging.bus import Verdict
from infra.messaging.consumers import CATALOGUE_QUEUE, SAGA_QUEUE
from infra.runtime import Runtime
from infra.settings import Settings
from tests.saga_harness import ADDRESS, Stack, finished, hear_catalogue, running, until
from tests.saga_harness import test_bus as quick_bus

HUB = "USB-C Hub (limited)"


def order_of(product_id: UUID, quantity: int = 1) -> PlaceOrder:
    return PlaceOrder(customer_id=uuid4(), shipping_address=ADDRESS,
                      items=[{"product_id": product_id, "quantity": quantity}])


def test_an_order_is_priced_from_the_listing_orders_heard_and_refused_before(
    store_settings: Settings,
) -> None:
    product = uuid4()
    with bootstrap(store_settings) as system:
        system.inventory.list_product(ListProduct(product_id=product, name=HUB, price=Decimal("79.99")))
        before = system.orders.recorder.max_notification_id()

        with pytest.raises(UnknownProductError) as refused:
            system.orders.place_order(order_of(product))  # listed, but Orders has not heard yet
        assert refused.value.field == "items[0].product_id"
        assert system.orders.recorder.max_notification_id() == before  # nothing written

        hear_catalogue(system)
        order_id = system.orders.place_order(order_of(product, 2))

        assert system.orders.get_order(order_id).total == Money.of("159.98")
        assert system.orders.catalogue([product])[product].name == HUB


def test_a_redelivered_listing_is_acknowledged_and_changes_nothing(store_settings: Settings) -> None:
    with bootstrap(store_settings) as system:
        system.inventory.seed()
        first = hear_catalogue(system)
        heard = system.orders.recorder.max_notification_id()

        again = hear_catalogue(system)  # the whole window delivered again, as after a relay's crash

        assert [o.verdict for o in first] == [Verdict.DONE] * len(SEED_CATALOGUE)
        assert [o.verdict for o in again] == [Verdict.DONE] * len(SEED_CATALOGUE)
        assert system.orders.recorder.max_notification_id() == heard
        laptop = SEED_CATALOGUE[0]
        assert system.orders.catalogue([laptop.product_id])[laptop.product_id].price == Money.of(laptop.price)


def test_orders_places_orders_with_inventory_s_store_gone(store_settings: Settings) -> None:
    with bootstrap(store_settings) as system:
        system.inventory.seed()
        hear_catalogue(system)
    _destroy_inventory_store(store_settings)

    with bootstrap(store_settings) as orders_process:
        order_id = orders_process.orders.place_order(order_of(SEED_CATALOGUE[1].product_id, 3))
        assert orders_process.orders.get_order(order_id).total == Money.of("149.97")
        assert orders_process.orders.catalogue([SEED_CATALOGUE[1].product_id])  # names, for the read side

    assert _inventory_store_still_destroyed(store_settings)  # nobody opened it, even to create it again


async def test_a_product_listed_while_the_system_runs_is_sold_at_its_price_moments_later(
    stack: Stack,
) -> None:
    settings, bus = stack
    product = uuid4()
    async with running(settings, bus) as system:  # it starts once Orders has heard the seed
        system.inventory.list_product(ListProduct(product_id=product, name=HUB, price=Decimal("12.50")))
        await until(lambda: product in system.orders.catalogue([product]))

        order_id = system.orders.place_order(order_of(SEED_CATALOGUE[1].product_id))
        saga = await finished(system, order_id)
        priced = system.orders.place_order(order_of(product, 2))

        assert str(saga.status) == "COMPLETED"
        assert system.orders.get_order(priced).total == Money.of("25.00")
        # Every queue bound to the listings took them: none parked, not even the saga's, which hears all.
        assert await bus.dead_letters(SAGA_QUEUE) == []
        assert await bus.dead_letters(CATALOGUE_QUEUE) == []


async def test_a_process_that_listed_the_seed_is_ready_only_once_orders_has_heard_it(
    store_settings: Settings,
) -> None:
    unheard = "catalogue: Orders has not heard 5 of the 5 seed products yet"
    seeding = Runtime(assemble(store_settings, ["orders"], bus=quick_bus(), seed=True))  # and no relay
    not_seeding = Runtime(assemble(store_settings, ["orders"], bus=quick_bus(), seed=False))
    await seeding.start()
    await not_seeding.start()
    try:
        before = await seeding.check()
        assert (before["status"], before["down"]) == ("unavailable", [unheard])
        assert "down" not in await not_seeding.check()  # it promised no catalogue

        await asyncio.to_thread(hear_catalogue, seeding.system)  # as the relay would carry it

        after = await seeding.check()
        assert after["status"] == "ok" and "down" not in after
    finally:
        for runtime in (seeding, not_seeding):
            await runtime.stop()
            runtime.system.close()


GARBAGE = b"not a database any more" * 100


def _destroy_inventory_store(settings: Settings) -> None:
    where = settings.postgres
    if where is None:
        (settings.data_dir / "inventory.sqlite").write_bytes(GARBAGE)
        return
    with psycopg.connect(where.url, autocommit=True) as connection:
        for table in ("inventory_events", "inventory_snapshots", "inventory_tracking"):
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(
                sql.Identifier(where.schema_name or "public"), sql.Identifier(table)))


def _inventory_store_still_destroyed(settings: Settings) -> bool:
    where = settings.postgres
    if where is None:
        return (settings.data_dir / "inventory.sqlite").read_bytes() == GARBAGE
    with psycopg.connect(where.url, autocommit=True) as connection:
        table = f"{where.schema_name or 'public'}.inventory_events"
        found = connection.execute("SELECT to_regclass(%s)", (table,))
        row = found.fetchone()
    return row is not None and row[0] is None


def test_migrate_has_orders_hear_the_listings_of_a_store_from_before_they_were_published(
    store_settings: Settings,
) -> None:
    hub = uuid4()
    with bootstrap(store_settings) as system:  # listed, and never carried to Orders
        system.inventory.seed()
        system.inventory.list_product(ListProduct(product_id=hub, name=HUB, price=Decimal("9.90")))

    assert migrate(store_settings)
    with bootstrap(store_settings) as system:
        heard = system.orders.recorder.max_notification_id()
        assert migrate(store_settings)  # again: nothing more is heard
        assert system.orders.recorder.max_notification_id() == heard
        hear_catalogue(system)  # and the relay's late delivery of the same listings is a repeat
        assert system.orders.recorder.max_notification_id() == heard

        order_id = system.orders.place_order(order_of(hub, 3))
        assert system.orders.get_order(order_id).total == Money.of("29.70")
        ids = [product.product_id for product in SEED_CATALOGUE]
        assert len(system.orders.catalogue(ids)) == len(SEED_CATALOGUE)

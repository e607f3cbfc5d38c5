"""Each event store's key table: written by the saves that seal, safe against rivals, forgetting, and cuts.

Two systems on one store stand for two processes, each with keys at hand of its own
(at once only on PostgreSQL: the embedded store is one serving process's).
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from commands.orders import PlaceOrder
from domain.privacy import ERASED
from infra.bootstrap import System, bootstrap
from infra.settings import PostgresDsn, Settings
from tests.saga_harness import ADDRESS, MOUSE, hear_catalogue

pytestmark = pytest.mark.integration


def place_for(system: System, customer_id: UUID) -> UUID:
    system.inventory.seed()  # the catalogue, once
    hear_catalogue(system)  # as the relay and Orders' consumer would
    items = [{"product_id": MOUSE, "quantity": 1}]
    command = PlaceOrder(customer_id=customer_id, items=items, shipping_address=ADDRESS)
    return system.orders.place_order(command)


def kept_keys(system: System, customer_id: UUID) -> dict[UUID, bytes]:
    return system.orders.recorder.key_table.get_many([customer_id])  # type: ignore[attr-defined,no-any-return]


def test_two_processes_placing_the_first_orders_of_one_customer_at_once_keep_one_key_and_both_open(
    postgres_settings: Settings,
) -> None:
    with bootstrap(postgres_settings) as one, bootstrap(postgres_settings) as other:
        customers = [uuid.uuid4() for _ in range(10)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            placed = list(pool.map(
                lambda job: (job[1], place_for(job[0], job[1])),
                [(system, customer) for customer in customers for system in (one, other, one, other)],
            ))

        assert len(placed) == 40
        for customer in customers:
            assert len(kept_keys(one, customer)) == 1
        with bootstrap(postgres_settings) as reader:  # a process started afterwards opens every address
            cities = {reader.orders.get_order(order_id).shipping_address.city for _, order_id in placed}
        assert cities == {ADDRESS["city"]}


def test_an_order_placed_after_its_customer_was_forgotten_elsewhere_opens_and_the_earlier_stays_erased(
    store_settings: Settings,
) -> None:
    customer = uuid.uuid4()
    with bootstrap(store_settings) as here, bootstrap(store_settings) as elsewhere:
        earlier = place_for(here, customer)  # `here` keeps the key it sealed with at hand
        keys = elsewhere.personal_data
        assert keys is not None and keys.forget(customer) is True

        # At once: sealed with the key at hand, the save fails its check, and the command,
        # decided again, seals with a new key.
        later = place_for(here, customer)
        assert len(kept_keys(here, customer)) == 1

    with bootstrap(store_settings) as reader:
        assert reader.orders.get_order(later).shipping_address.city == ADDRESS["city"]
        assert reader.orders.get_order(earlier).shipping_address.city == ERASED


def waiting_sessions(admin: psycopg.Connection[tuple[object, ...]], dbname: str) -> list[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        " AND wait_event_type = 'Lock'", (dbname,),
    ).fetchall()
    return [int(str(pid)) for (pid,) in rows]


def test_keys_read_while_the_server_ends_the_session_are_read_on_another(postgres_settings: Settings) -> None:
    where = postgres_settings.postgres
    assert where is not None
    outcome: dict[str, object] = {}
    with bootstrap(postgres_settings) as system:
        customer = uuid.uuid4()
        place_for(system, customer)
        table = system.orders.recorder.key_table  # type: ignore[attr-defined]

        def read() -> None:
            try:
                outcome["kept"] = table.get_many([customer])
            except Exception as error:  # reported by the assertion below
                outcome["error"] = error

        with psycopg.connect(where.url, autocommit=True) as admin:
            # Hold the table so the read waits on the server, then end the session it waits in.
            locker = psycopg.connect(where.url)
            locker.execute(sql.SQL("LOCK TABLE {}.personal_data_keys IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(schema(where))))
            reading = threading.Thread(target=read)
            reading.start()
            deadline = time.monotonic() + 10
            while not (pids := waiting_sessions(admin, where.dbname)):
                assert time.monotonic() < deadline, "the read never waited on the lock"
                time.sleep(0.05)
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            locker.rollback()
            locker.close()
            reading.join(timeout=30)

        assert "error" not in outcome, outcome.get("error")
        assert outcome["kept"] == kept_keys(system, customer) and len(kept_keys(system, customer)) == 1


def schema(where: PostgresDsn) -> str:
    return where.schema_name or "public"

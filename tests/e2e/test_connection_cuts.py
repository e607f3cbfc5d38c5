"""PostgreSQL cutting every connection of the system, again and again, while orders come in.

Every role runs as its own `saga serve --role R` process, as in test_processes, the api and
the projector too. While the test process places 200 orders at a steady pace, the server
terminates every session of the run's database five times, a couple of seconds apart
(`pg_terminate_backend`, as a failover or an administrator would): the roles' pooled
connections, the relays' leadership sessions, the read store's, and the test process's own.
Every role must find its way back on its own: every order ends, nothing is done twice,
nothing is parked, no process dies, and every role answers /readyz with 200 again.
"""

from __future__ import annotations

import time
from collections import Counter
from uuid import UUID

import httpx
import psycopg
import pytest
from psycopg.rows import TupleRow

from infra.bootstrap import System
from infra.settings import PostgresDsn, Settings
from tests.e2e.processes import Broker, Cluster, RoleProcess
from tests.e2e.test_processes import (
    ALL_FINISHED_WITHIN,
    assert_nothing_lost_or_doubled,
    assert_nothing_parked,
    orders_being_placed,
    start_system,
)

CUTS = 5
CUT_EVERY = 2.5  # seconds
# Twenty seconds of placing: the last cut falls well before the last order is placed.
PLACED_PER_SECOND = 10.0
FIRST_CUT_AFTER = 5  # sagas ended: orders flow through every role before the first cut
READY_WITHIN = 60.0
READ_SIDE = ("projector", "api")  # the roles start_system leaves out


@pytest.fixture
def cluster_settings(cluster_settings: Settings) -> Settings:
    """The product's default pool size rather than the tests' two.

    At two, the nine roles and the test process hold nearly a hundred sessions, all of a
    stock server's connections, and could not all connect again after a cut.
    """
    default = Settings.model_fields["postgres_pool_size"].default
    return cluster_settings.model_copy(update={"postgres_pool_size": default})


def cut_every_connection(admin: psycopg.Connection[TupleRow], dbname: str) -> Counter[str]:
    """Terminate every other client session of the database; how many, by application name."""
    rows = admin.execute(
        "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        (dbname,),
    ).fetchall()
    return Counter(str(name) or "(unnamed)" for name, terminated in rows if terminated)


def cut_while_placing(system: System, database: PostgresDsn) -> tuple[list[UUID], list[Counter[str]]]:
    """Place the orders and cut every connection CUTS times meanwhile; the orders and what each cut ended."""
    # The session that cuts is opened first and spared: a server near its limit may refuse a new one.
    with (
        psycopg.connect(database.url, autocommit=True) as admin,
        orders_being_placed(system, PLACED_PER_SECOND) as (ends, placing),
    ):
        ends.wait_for(FIRST_CUT_AFTER, within=60)
        cuts = [cut_every_connection(admin, database.dbname)]
        for _ in range(CUTS - 1):
            time.sleep(CUT_EVERY)
            cuts.append(cut_every_connection(admin, database.dbname))
        placing_through_every_cut = not placing.done()
        order_ids = placing.result(timeout=60)
    assert placing_through_every_cut, "the orders were all placed before the last cut"
    ends.wait_for(len(order_ids), within=ALL_FINISHED_WITHIN)
    return order_ids, cuts


def readiness(process: RoleProcess) -> tuple[int, str]:
    try:
        # The api asks the read store, then the event stores, each for up to 3 s: time to say which is down.
        answer = httpx.get(f"http://127.0.0.1:{process.port}/readyz", timeout=10)
    except httpx.TransportError as error:
        return 0, repr(error)
    return answer.status_code, answer.text


def wait_until_every_role_is_ready(processes: list[RoleProcess], within: float) -> None:
    """Poll each process's /readyz until each has answered 200, or fail naming the last answers."""
    deadline = time.monotonic() + within
    last: dict[str, tuple[int, str]] = {p.name: (0, "not asked") for p in processes}
    while True:
        for process in processes:
            if last[process.name][0] != 200:
                last[process.name] = readiness(process)
        not_ready = {name: answer for name, answer in last.items() if answer[0] != 200}
        if not not_ready:
            return
        assert time.monotonic() < deadline, f"not ready {within} s after the orders ended: {not_ready}"
        time.sleep(0.5)


def test_every_database_connection_cut_five_times_amid_two_hundred_orders_loses_and_doubles_nothing(
    cluster: Cluster, system: System, broker: Broker | None
) -> None:
    start_system(cluster)
    cluster.start_all(READ_SIDE)
    database = cluster.settings.postgres
    assert database is not None

    order_ids, cuts = cut_while_placing(system, database)

    # A cut that ended none of the roles' sessions would prove nothing: each cut ended some.
    ours = f"{cluster.settings.bus_namespace}/"
    assert all(any(name.startswith(ours) for name in cut) for cut in cuts), f"sessions each cut ended: {cuts}"
    assert_nothing_lost_or_doubled(system, order_ids)
    assert_nothing_parked(broker, cluster)
    # No process died of it, nor had to be started again.
    histories = {p.name: p.history() for p in cluster.processes}
    assert all(p.running and p.starts == 1 for p in cluster.processes), histories
    wait_until_every_role_is_ready(cluster.processes, within=READY_WITHIN)

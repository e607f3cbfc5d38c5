"""Fixtures for the system run as separate processes.

`cluster` gives a test its own schema, vhost and bus namespace, runs `saga migrate`
there, and stops every process it started when the test ends, however it ends;
`system` is the test process's own view of those stores, the catalogue seeded and topped up.
When a test fails, the last lines of each process's output are added to its report.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from commands.inventory import SEED_CATALOGUE, Restock
from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from tests.e2e.processes import Broker, Cluster
from tests.integration.test_saga_at_volume import TOP_UP
from tests.saga_harness import hear_catalogue

FAILURE_SEED = 20_240_611
CLUSTER = pytest.StashKey[Cluster]()


@pytest.fixture
def cluster_settings(postgres_settings: Settings, rabbitmq_url: str, rabbit_namespace: str) -> Settings:
    """The test's stores and bus, with reproducible simulated failures at the default rates."""
    return postgres_settings.model_copy(update={
        "amqp_url": rabbitmq_url,
        "bus_namespace": rabbit_namespace,
        "failure_seed": FAILURE_SEED,
        "create_table": False,  # `saga migrate` creates the tables, as in a deployment
    })


@pytest.fixture
def cluster(cluster_settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    processes = Cluster(cluster_settings, tmp_path / "processes")
    request.node.stash[CLUSTER] = processes
    try:
        processes.migrate()
        yield processes
    finally:
        processes.close()


@pytest.fixture
def system(cluster: Cluster) -> Iterator[System]:
    """The test process's own view of the stores, for placing orders and reading what happened."""
    with bootstrap(cluster.settings) as system:
        system.inventory.seed()
        hear_catalogue(system)  # as the relay and Orders' consumer would
        for product in SEED_CATALOGUE:
            system.inventory.restock(Restock(product_id=product.product_id, quantity=TOP_UP))
        yield system


@pytest.fixture
def broker(rabbitmq_vhost: str | None) -> Broker | None:
    """The local broker through rabbitmqctl, or None when the broker is remote or rabbitmqctl is missing."""
    if rabbitmq_vhost is None or shutil.which("rabbitmqctl") is None:
        return None
    return Broker(rabbitmq_vhost)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    processes = item.stash.get(CLUSTER, None)
    if processes is not None and report.failed:
        report.sections.append(("output of the processes (last lines)", processes.report()))
    return report

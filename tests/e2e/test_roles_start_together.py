"""Every role, started at the same instant on a fresh schema with the default settings, comes up.

Nobody runs `saga migrate` first: each process creates the schema and the
tables it needs (CREATE_TABLE is on by default), all at once, as a deployment
that starts every service together does. Each round gets a schema and a bus
namespace that do not exist yet.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from infra.runtime import ROLES
from infra.settings import PostgresDsn, Settings
from tests.e2e.conftest import CLUSTER
from tests.e2e.processes import START_WITHIN, Cluster, RoleProcess

ROUNDS = 3


def fresh_settings(database: PostgresDsn, amqp_url: str) -> Settings:
    suffix = uuid.uuid4().hex[:12]
    return Settings(_env_file=None, database_url=f"{database.url}?schema=t_{suffix}", amqp_url=amqp_url,
                    bus_namespace=f"t{suffix}")


def start_every_role_at_once(cluster: Cluster) -> list[RoleProcess]:
    """One process per role, all launched before any is waited for, with the environment's defaults."""
    assert "CREATE_TABLE" not in cluster.env
    processes = [RoleProcess(role, f"{role}-1", cluster.env, cluster.workdir) for role in ROLES]
    cluster.processes += processes
    for process in processes:
        process.start()
    return processes


def ready(process: RoleProcess) -> bool:
    """Its health answers 200: its event stores and the broker (the api: its projections too) answer."""
    try:
        return httpx.get(f"http://127.0.0.1:{process.port}/api/v1/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def wait_until_ready(processes: list[RoleProcess], within: float = START_WITHIN) -> None:
    for process in processes:
        process.wait_until_healthy(within)  # up, and answering as itself on its port
    deadline = time.monotonic() + within
    waiting = list(processes)
    while waiting and time.monotonic() < deadline:
        waiting = [p for p in waiting if not ready(p)]
        exited = [p.name for p in processes if not p.running]
        assert not exited, f"exited after coming up: {', '.join(exited)}"
        time.sleep(0.2)
    assert not waiting, f"not ready within {within} s: {', '.join(p.name for p in waiting)}"


def test_every_role_started_at_once_on_a_fresh_schema_comes_up(
    postgres_database: PostgresDsn, rabbitmq_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for round_number in range(1, ROUNDS + 1):
        cluster = Cluster(fresh_settings(postgres_database, rabbitmq_url), tmp_path / f"round-{round_number}")
        request.node.stash[CLUSTER] = cluster  # a failing round shows every process's output
        try:
            processes = start_every_role_at_once(cluster)
            wait_until_ready(processes)
        finally:
            cluster.close()

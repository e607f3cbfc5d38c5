"""The scale-out compose file agrees with the code: a database per context, a three-node RabbitMQ cluster.

Nothing here runs Docker; infra/compose/scale-out.yml is read and checked against the roles and the settings,
as tests/unit/test_compose.py checks docker-compose.yml.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from infra.runtime import ROLES
from tests.unit.test_compose import ENV_NAMES, environment, healthcheck_port, option

ROOT = Path(__file__).resolve().parents[2]
SCALE_OUT = ROOT / "infra" / "compose" / "scale-out.yml"
CLUSTER_CONF = ROOT / "infra" / "compose" / "rabbitmq-cluster.conf"
DATABASES = ("ORDERS", "PAYMENTS", "INVENTORY", "SHIPPING", "NOTIFICATIONS", "SAGAS", "READ")
NODES = ("rabbitmq-1", "rabbitmq-2", "rabbitmq-3")

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load(SCALE_OUT.read_text())
    assert isinstance(loaded, dict) and isinstance(loaded.get("services"), dict)
    return dict(loaded["services"])


@pytest.fixture(scope="module")
def app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the system's image: every role, the migration and the seed."""
    return {name: s for name, s in services.items() if s.get("image") == "saga-shop:latest"}


def roles_of(app_services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {option(s["command"], "--role") or "": s
            for s in app_services.values() if s["command"][0] == "serve"}


def test_every_role_runs_as_a_service_of_its_own_that_can_be_scaled(
    services: dict[str, dict[str, Any]], app_services: dict[str, dict[str, Any]],
) -> None:
    roles = roles_of(app_services)
    assert set(roles) == set(ROLES)
    for role, service in roles.items():
        assert healthcheck_port(service) == int(option(service["command"], "--port") or 0), role
    for name, service in services.items():
        assert "container_name" not in service, f"{name} has a fixed name, so it cannot be scaled"
        assert not service.get("ports") or name == "api", f"{name} publishes a host port"


def test_each_context_and_the_read_store_has_a_postgresql_server_of_its_own(
    services: dict[str, dict[str, Any]], app_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in app_services.items():
        env = environment(service)
        hosts = {prefix: urlsplit(env[f"{prefix}_DATABASE_URL"]).hostname for prefix in DATABASES}
        assert len(set(hosts.values())) == len(DATABASES), f"{name} shares a database: {hosts}"
        for prefix, host in hosts.items():
            assert host in services, f"{name}: {prefix}_DATABASE_URL names no service of the file ({host})"
            assert services[host]["image"].startswith("postgres:"), host
            assert services[host]["healthcheck"]["test"], f"{host} needs a healthcheck to wait on"
        assert "DATABASE_URL" not in env, f"{name}: every context is named, none falls back"


def test_every_client_knows_the_three_nodes_and_declares_quorum_queues(
    app_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in app_services.items():
        env = environment(service)
        urls = env["AMQP_URL"].split(",")
        assert sorted(urlsplit(url.strip()).hostname or "" for url in urls) == list(NODES), name
        assert env["QUEUE_TYPE"] == "quorum", name
        if name not in ("migrate", "seed"):
            assert env["CREATE_TABLE"] == "false", f"{name} must leave the tables to `saga migrate`"


def test_the_three_rabbitmq_nodes_form_one_cluster(services: dict[str, dict[str, Any]]) -> None:
    configured = re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+\s*=\s*rabbit@(\S+)$",
                            CLUSTER_CONF.read_text(), flags=re.MULTILINE)
    assert sorted(configured) == list(NODES)
    for node in NODES:
        service = services[node]
        assert service["hostname"] == node, f"{node}'s node name follows its host name"
        mounts = [str(volume) for volume in service["volumes"]]
        conf = "./infra/compose/rabbitmq-cluster.conf:/etc/rabbitmq/conf.d/"
        assert any(m.startswith(conf) for m in mounts), f"{node} must read the cluster's config"
        assert any(m.endswith(":/var/lib/rabbitmq") for m in mounts), f"{node} must keep its data in a volume"
        assert "RABBITMQ_ERLANG_COOKIE" in environment(service), f"{node} must share the cluster's cookie"


def test_nothing_starts_before_the_servers_are_ready_and_migrated(
    services: dict[str, dict[str, Any]], app_services: dict[str, dict[str, Any]],
) -> None:
    servers = {name for name in services if name.startswith(("postgres-", "rabbitmq-"))}
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"] and migrate.get("restart") == "no"
    assert {name: spec["condition"] for name, spec in migrate["depends_on"].items()} == dict.fromkeys(
        servers, "service_healthy")
    for name, service in app_services.items():
        if name == "migrate":
            continue
        conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
        assert conditions.get("migrate") == "service_completed_successfully", name
    assert services["api"]["depends_on"]["seed"]["condition"] == "service_completed_successfully"


def test_every_variable_the_file_names_is_a_setting(app_services: dict[str, dict[str, Any]]) -> None:
    named = set().union(*(environment(service) for service in app_services.values()))
    unknown = {name.upper() for name in named} - ENV_NAMES
    assert not unknown, f"scale-out.yml names variables no setting reads: {sorted(unknown)}"

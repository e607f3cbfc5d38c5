"""The container files agree with the code: docker-compose.yml, the Dockerfile and .env.example.

Nothing here runs Docker; the files are read and checked against the roles, the CLI and the settings.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml
from pydantic import AliasChoices, AliasPath

from infra.cli.main import app as cli_app
from infra.runtime import ROLES, WORKER_PORTS
from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

pytestmark = pytest.mark.unit


def settings_env_names() -> set[str]:
    """The variables Settings reads: each field's name (with the prefix) or its validation aliases."""
    prefix = str(Settings.model_config.get("env_prefix") or "")
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, AliasPath):
            names.add(str(alias.path[0]))
        else:
            names.add(prefix + name)
    return {name.upper() for name in names}


ENV_NAMES = settings_env_names()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict), "docker-compose.yml must be a mapping"
    assert isinstance(loaded.get("services"), dict), "docker-compose.yml has no services"
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def role_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services running `saga serve`, by the role each runs."""
    by_role: dict[str, dict[str, Any]] = {}
    for name, service in services.items():
        command = service.get("command")
        if isinstance(command, list) and command[:1] == ["serve"]:
            role = option(command, "--role")
            assert role is not None, f"{name}: `serve` without --role runs every role in one process"
            assert role not in by_role, f"two services run the role {role}"
            by_role[role] = service
    return by_role


def option(command: list[str], name: str) -> str | None:
    values = [command[i + 1] for i, word in enumerate(command[:-1]) if word == name]
    assert len(values) <= 1, f"{name} given twice in {command}"
    return values[0] if values else None


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def healthcheck_port(service: dict[str, Any]) -> int:
    test = (service.get("healthcheck") or {}).get("test")
    assert test, "no healthcheck test"
    text = test if isinstance(test, str) else " ".join(str(word) for word in test)
    found = re.findall(r"https?://(?:127\.0\.0\.1|localhost):(\d+)/healthz\b", text)
    assert len(found) == 1, f"the healthcheck must request /healthz on one local port: {text}"
    return int(found[0])


def env_example_keys() -> list[str]:
    """Every `KEY=value` line of .env.example, commented-out ones included."""
    return re.findall(r"^#?\s*([A-Za-z_][A-Za-z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE)


def test_every_role_has_exactly_one_service_and_nothing_else_runs_serve(
    role_services: dict[str, dict[str, Any]],
) -> None:
    assert set(role_services) == set(ROLES)


def test_the_commands_are_ones_the_cli_has() -> None:
    click_app = typer.main.get_command(cli_app)
    commands = getattr(click_app, "commands", {})
    assert {"serve", "migrate", "seed"} <= set(commands)
    serve_options = {opt for param in commands["serve"].params for opt in param.opts}
    assert {"--role", "--host", "--port"} <= serve_options


def test_each_role_listens_on_all_interfaces_on_its_own_port_and_checks_it(
    role_services: dict[str, dict[str, Any]],
) -> None:
    ports: dict[int, str] = {}
    for role, service in role_services.items():
        command = service["command"]
        assert set(command[1::2]) <= {"--role", "--host", "--port"}, f"{role}: unexpected {command}"
        assert option(command, "--host") == "0.0.0.0", f"{role} must listen beyond the container"
        explicit = option(command, "--port")
        port = int(explicit) if explicit else WORKER_PORTS.get(role, Settings.model_fields["port"].default)
        if role in WORKER_PORTS:
            assert port == WORKER_PORTS[role], f"{role} listens on {port}, the docs say {WORKER_PORTS[role]}"
        assert port not in ports, f"{role} and {ports.get(port)} share port {port}"
        ports[port] = role
        assert healthcheck_port(service) == port, f"{role}'s healthcheck asks another port than {port}"


def test_app_services_wait_for_their_dependencies_to_be_ready(
    services: dict[str, dict[str, Any]], role_services: dict[str, dict[str, Any]],
) -> None:
    expected = {
        "postgres": "service_healthy",
        "rabbitmq": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    for role, service in role_services.items():
        depends_on = service.get("depends_on")
        assert isinstance(depends_on, dict), f"{role}: depends_on needs conditions, not a list"
        conditions = {name: (spec or {}).get("condition") for name, spec in depends_on.items()}
        # The API takes orders, so it waits for the catalogue too.
        wanted = expected | {"seed": "service_completed_successfully"} if role == "api" else expected
        assert conditions == wanted, f"{role} depends on {conditions}"
    for name in ("postgres", "rabbitmq"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} needs a healthcheck to wait on"


def test_the_migrate_service_runs_once_against_a_ready_postgres_and_broker(
    services: dict[str, dict[str, Any]],
) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    # It creates the tables and declares the queues, so that a role started late finds its messages.
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no", "a completed migration must not be restarted"
    assert "build" in migrate or "image" in migrate


def test_the_seed_service_lists_the_catalogue_once_after_the_migration(
    services: dict[str, dict[str, Any]],
) -> None:
    seed = services["seed"]
    assert seed["command"] == ["seed"]
    assert seed["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert seed.get("restart", "no") == "no", "a completed seed must not be restarted"
    assert json.dumps(seed.get("build"), sort_keys=True) == json.dumps(services["migrate"].get("build"),
                                                                       sort_keys=True)


def test_only_the_api_publishes_a_host_port_and_no_service_has_a_fixed_name(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        assert "container_name" not in service, f"{name} has a container_name, so it cannot be scaled"
        if name != "api":
            assert not service.get("ports"), f"{name} publishes a host port, so it cannot be scaled"
    published = [str(port) for port in services["api"].get("ports", [])]
    assert published == ["8000:8000"]


def test_every_app_service_runs_the_one_image_against_the_compose_services(
    services: dict[str, dict[str, Any]], role_services: dict[str, dict[str, Any]],
) -> None:
    app_services = {**role_services, "migrate": services["migrate"], "seed": services["seed"]}
    builds = {json.dumps(service.get("build"), sort_keys=True) for service in app_services.values()}
    assert len(builds) == 1 and builds != {"null"}, f"one build for every app service, got {builds}"
    for name, service in app_services.items():
        env = environment(service)
        assert urlsplit(env["DATABASE_URL"]).hostname == "postgres", name
        assert urlsplit(env["AMQP_URL"]).hostname == "rabbitmq", name
        if name not in ("migrate", "seed"):
            assert env["CREATE_TABLE"] == "false", f"{name} must leave the tables to `saga migrate`"


def test_every_variable_the_files_name_is_a_setting(
    services: dict[str, dict[str, Any]], role_services: dict[str, dict[str, Any]],
) -> None:
    app_services = {**role_services, "migrate": services["migrate"]}
    named = {f"environment of {name}": set(environment(s)) for name, s in app_services.items()}
    named["${...} in docker-compose.yml"] = set(
        re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()))
    named[".env.example"] = set(env_example_keys())
    for where, names in named.items():
        unknown = {name.upper() for name in names} - ENV_NAMES
        assert not unknown, f"{where} names variables no setting reads: {sorted(unknown)}"


def test_env_example_documents_every_setting_with_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = env_example_keys()
    assert len(keys) == len(set(keys)), "a variable is listed twice in .env.example"
    old_names = {name for name in ENV_NAMES if name.startswith(("DB_", "RABBITMQ_"))}
    missing = ENV_NAMES - old_names - set(keys)
    assert not missing, f"missing from .env.example: {sorted(missing)}"
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    from_example = Settings(_env_file=ENV_EXAMPLE)
    defaults = Settings(_env_file=None)
    assert from_example.model_dump() == defaults.model_dump(), ".env.example values differ from the defaults"


def test_the_dockerfile_runs_the_saga_script_as_a_non_root_user() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()
             if line.strip() and not line.strip().startswith("#")]
    instructions: dict[str, list[str]] = {}
    for line in lines:
        word, _, rest = line.partition(" ")
        instructions.setdefault(word.upper(), []).append(rest.strip())

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert instructions["FROM"][0] == "python:3.11-slim"
    assert json.loads(instructions["ENTRYPOINT"][-1]) == ["saga"]
    assert "saga" in scripts
    assert json.loads(instructions["CMD"][-1]) == ["serve"]
    assert any(re.search(r"\bpip install \.(\s|$)", run) for run in instructions.get("RUN", []))
    user = instructions.get("USER", ["root"])[-1]
    assert shlex.split(user)[0].split(":")[0] not in ("root", "0"), "the image must not run as root"

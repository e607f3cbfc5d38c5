"""The README's recipes, run as written, so that the README cannot drift from what works.

A recipe is the README's `sh` blocks marked `<!-- recipe NAME -->` (or
`<!-- recipe NAME, shell N -->` when it needs several shells). Each recipe runs
in a fresh copy of the project (its tracked files, with this checkout's
`.venv`), in an environment without any of the project's variables, as a
newcomer would paste it: the blocks of one shell as one bash script, every
shell but the last left running in the background (a server), the last one
to completion. What the README leaves to the reader is filled in: `ORDER_ID`
becomes the id of an order placed by the README's own `PlaceOrder` operation,
and the separate-process recipe gets a database and a vhost of its own instead
of `saga` and `/`. Lines that start `docker` are left out: this machine has no
Docker engine (`tests/unit/test_compose.py` checks the compose file instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from infra.settings import PostgresDsn
from tests.conftest import _rabbitmqctl, unavailable

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
API = "http://127.0.0.1:8000"
PORTS = range(8000, 8009)  # the api and the eight worker roles, on their default ports
MARKER = re.compile(
    r"<!-- recipe (?P<name>[\w-]+)(?:, shell (?P<shell>\d+))? -->\n```(?P<lang>\w*)\n(?P<body>.*?)```",
    re.DOTALL)
SETTINGS_VARIABLES = re.compile(
    r"^(DATABASE_URL|AMQP_URL|DATA_DIR|BUS_NAMESPACE|AUTH_\w+|ADMIN_TOKEN|CREATE_TABLE|GRAPHQL_\w+|DB_\w+|"
    r"RABBITMQ_\w+|HOST|PORT|LOG_\w+|\w+_FAILURE_RATE|FAILURE_SEED|STEP_TIMEOUT_SECONDS|VIRTUAL_ENV)$")
RECIPE_SECONDS = 240


@dataclass
class Recipe:
    name: str
    shells: dict[int, list[str]] = field(default_factory=dict)

    def script(self, shell: int) -> str:
        return "\n".join(self.shells[shell])


def readme_recipes() -> dict[str, Recipe]:
    recipes: dict[str, Recipe] = {}
    for found in MARKER.finditer(README.read_text()):
        assert found["lang"] == "sh", f"recipe {found['name']} is not an sh block"
        recipe = recipes.setdefault(found["name"], Recipe(found["name"]))
        recipe.shells.setdefault(int(found["shell"] or 1), []).append(found["body"])
    return recipes


def graphql_operations() -> str:
    """The README's GraphQL block: the document a newcomer pastes into GraphiQL."""
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) == 1, "the README should have one GraphQL block, pasted into GraphiQL as one document"
    return str(blocks[0])


def test_the_readme_has_the_recipes_this_file_runs() -> None:
    recipes = readme_recipes()
    assert set(recipes) == {"embedded", "tokens", "separate", "compose"}
    assert sorted(recipes["embedded"].shells) == [1, 2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the project's files, as a clone would have them, using this checkout's .venv."""
    venv = ROOT / ".venv"
    if not (venv / "bin" / "saga").exists():
        pytest.fail("no .venv with saga in it: run `make test`, which creates it")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    copy = tmp_path / "saga-shop"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    (copy / ".venv").symlink_to(venv)
    # `make run` must find the venv installed, or it would reinstall the project from this copy.
    if subprocess.run(["make", "-q", ".venv/.installed-stamp"], cwd=copy).returncode != 0:
        pytest.fail(".venv is older than pyproject.toml: run `make test` to reinstall first")
    return copy


def newcomer_environment() -> dict[str, str]:
    """This process's environment without the project's variables, and without the venv on PATH."""
    env = {key: value for key, value in os.environ.items() if not SETTINGS_VARIABLES.match(key)}
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep)
                                  if not part.startswith(str(ROOT)))
    return env


class Shells:
    """The shells a recipe runs in, each its own process group, all stopped at the end."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.background: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, script: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as output:
            process = subprocess.Popen(["bash", "-c", script], cwd=self.cwd, env=self.env, stdout=output,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.background.append((process, log))
        return process

    def run(self, script: str, log: Path) -> str:
        """Run a script to the end as `bash -e` would: the first failing command fails the recipe."""
        process = self.start("set -e\n" + script, log)
        try:
            process.wait(timeout=RECIPE_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the recipe did not finish within {RECIPE_SECONDS} s:\n{self.logs()}")
        output = log.read_text()
        assert process.returncode == 0, f"the recipe failed with {process.returncode}:\n{self.logs()}"
        return output

    def logs(self) -> str:
        parts = [f"--- {log.name}\n{log.read_text()[-4000:]}" for _, log in self.background if log.exists()]
        parts += [f"--- {path.name}\n{path.read_text()[-3000:]}" for path in sorted(self.cwd.glob("*.log"))]
        return "\n".join(parts)

    def stop(self) -> None:
        for process, _ in self.background:
            with_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process, _ in self.background:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with_group(process, signal.SIGKILL)
        wait_until_ports_free(deadline + 10)


def with_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def port_in_use(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
    except httpx.TransportError:
        return False
    return True


def wait_until_ports_free(deadline: float) -> None:
    while any(port_in_use(port) for port in PORTS):
        if time.monotonic() > deadline:
            pytest.fail("a role the recipe started still answers after it was stopped")
        time.sleep(0.2)


def wait_until_ready(process: subprocess.Popen[bytes], shells: Shells, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server's shell ended with {process.returncode}:\n{shells.logs()}")
        try:
            if httpx.get(f"{API}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"nothing answered {API}/readyz within {within} s:\n{shells.logs()}")


@pytest.fixture
def shells(project: Path, tmp_path: Path) -> Iterator[Shells]:
    if any(port_in_use(port) for port in PORTS):
        pytest.fail("ports 8000 to 8008, which the README's recipes use, are taken: stop what serves there")
    running = Shells(project, newcomer_environment())
    try:
        yield running
    finally:
        running.stop()


def graphql(query: str, operation: str | None = None, variables: dict[str, object] | None = None,
            token: str | None = None) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.post(f"{API}/graphql", json={"query": query, "operationName": operation,
                                                "variables": variables or {}}, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


async def follow(document: str, order_id: str) -> dict[str, Any]:
    """The README's FollowOrder subscription, as GraphiQL runs it: its first update of the order."""
    protocol = [Subprotocol("graphql-transport-ws")]
    async with connect("ws://127.0.0.1:8000/graphql", subprotocols=protocol) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
            "query": document, "operationName": "FollowOrder", "variables": {"id": order_id}}}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert message["type"] == "next" and "errors" not in message["payload"], message
    update: dict[str, Any] = message["payload"]["data"]["orderUpdated"]
    return update


def test_the_embedded_recipe_serves_runs_the_demo_and_audits_an_order(shells: Shells, tmp_path: Path) -> None:
    recipe = readme_recipes()["embedded"]
    server = shells.start(recipe.script(1), tmp_path / "shell-1.log")
    wait_until_ready(server, shells)

    # The README's GraphQL block, pasted whole into GraphiQL, run one named operation at a time.
    document = graphql_operations()
    placed = graphql(document, "PlaceOrder")
    assert "errors" not in placed, placed
    order = placed["data"]["placeOrder"]  # type: ignore[index]
    assert order["errors"] == [], order
    order_id = order["order"]["id"]
    listed = graphql(document, "RecentOrders")
    assert "errors" not in listed, listed
    assert order_id in {edge["node"]["id"] for edge in listed["data"]["orders"]["edges"]}  # type: ignore[index]

    followed = asyncio.run(follow(document, order_id))
    assert followed["status"] in {"PENDING", "PROCESSING", "COMPLETED", "CANCELLED"}, followed

    output = shells.run(recipe.script(2).replace("ORDER_ID", order_id), tmp_path / "shell-2.log")
    assert "50 of 50 order(s) finished" in output, output
    assert f"order {order_id}" in output and "Placed" in output, output  # the audit of the README's order
    assert (tmp_path / "saga-shop" / "data").is_dir(), "make run keeps its files under ./data"


def test_the_token_recipe_serves_on_every_interface_and_answers_a_customer(
    shells: Shells, tmp_path: Path,
) -> None:
    output = shells.run(readme_recipes()["tokens"].script(1), tmp_path / "tokens.log")
    answers = [line for line in output.splitlines() if line.startswith("{")]
    assert answers and '"orders"' in answers[-1] and '"errors"' not in answers[-1], output


@pytest.fixture
def own_vhost(rabbitmq_server: str) -> Iterator[str]:
    parts = urlsplit(rabbitmq_server)
    if shutil.which("rabbitmqctl") is None or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        unavailable("rabbitmqctl", "the separate-process recipe needs a vhost of its own, made on this host")
    name = f"saga_recipe_{uuid.uuid4().hex[:10]}"
    assert _rabbitmqctl("add_vhost", name)
    assert _rabbitmqctl("set_permissions", "-p", name, unquote(parts.username or "guest"), ".*", ".*", ".*")
    yield urlsplit(rabbitmq_server)._replace(path="/" + quote(name, safe="")).geturl()
    _rabbitmqctl("delete_vhost", name)


def test_the_separate_processes_recipe_runs_all_nine_roles_to_finished_orders(
    shells: Shells, tmp_path: Path, postgres_server: PostgresDsn, new_database: str, own_vhost: str,
) -> None:
    script = readme_recipes()["separate"].script(1)
    database = "postgresql://postgres@127.0.0.1:5432/saga"
    broker = "amqp://guest:guest@127.0.0.1:5672/"
    assert f"DATABASE_URL={database} " in script and f"AMQP_URL={broker}\n" in script
    ours = PostgresDsn.parse(postgres_server.url)
    script = script.replace(database, f"postgresql://{ours.user}@{ours.host}:{ours.port}/{new_database}")
    script = script.replace(broker, own_vhost)

    output = shells.run(script, tmp_path / "separate.log")
    assert f"created database {new_database}" in output, output
    assert "20 of 20 order(s) finished" in output, output
    for role in ("orders", "payments", "inventory", "shipping", "notifications", "saga", "relay", "projector",
                 "api"):
        log = tmp_path / "saga-shop" / f"{role}.log"
        assert log.exists(), f"the recipe started no {role}"
        assert "Traceback" not in log.read_text(), f"{role}.log has a traceback:\n{log.read_text()[-3000:]}"


def test_the_compose_recipe_writes_an_env_that_saga_token_signs_with(shells: Shells, tmp_path: Path) -> None:
    script = readme_recipes()["compose"].script(1)
    runnable = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("docker "))
    assert runnable != script, "the compose recipe runs docker compose"
    shells.run(runnable + "\n.venv/bin/saga token --admin\n", tmp_path / "compose.log")
    env = (tmp_path / "saga-shop" / ".env").read_text()
    assert re.search(r"^AUTH_JWT_SECRET=[0-9a-f]{64}$", env, re.MULTILINE), env

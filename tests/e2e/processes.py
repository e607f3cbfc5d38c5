"""The system's roles as separate processes, the way a deployment runs them.

`Cluster` runs `python -m infra.cli.main migrate` once, then starts each role with
`serve --role R --port P` and `CREATE_TABLE=n`, pointed at the test's schema,
vhost and bus namespace; a role counts as up once it answers `/healthz` (its
consumers subscribe before its web server starts). Each process writes its
output to a file of its own under the test's tmp_path, kept across restarts, so
a failing test can show the tail of every log. `close()` stops whatever is
still running: SIGINT first, SIGKILL if a process will not stop.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from infra.settings import DATABASE_CONTEXTS, Settings

PYTHON_CLI = (sys.executable, "-m", "infra.cli")
START_WITHIN = 60.0  # seconds for a role to answer /healthz; starting nine at once on two cores is slow
STOP_WITHIN = 20.0  # seconds for a role to exit after SIGINT before it is killed
PORT_ATTEMPTS = 3  # starts of a role whose port another program took first
# Variables of the outer environment that would point a role somewhere else.
FOREIGN = ("DATABASE_URL", "AMQP_URL", "BUS_NAMESPACE", "CREATE_TABLE", "FAILURE_SEED", "DB_HOST",
           "RABBITMQ_URL", "RABBITMQ_HOST", "STEP_TIMEOUT_SECONDS",
           *(f"{context.upper()}_DATABASE_URL" for context in DATABASE_CONTEXTS))


_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before in this test run: the OS may offer one twice."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def role_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes `saga` in another process see the same stores and bus as `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN and not k.startswith("DB_")}
    env.update({
        "DATABASE_URL": str(settings.database_url),
        "AMQP_URL": str(settings.amqp_url),
        "BUS_NAMESPACE": settings.bus_namespace,
        "STEP_TIMEOUT_SECONDS": str(settings.step_timeout_seconds),
        "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.postgres_max_overflow),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    })
    if settings.failure_seed is not None:
        env["FAILURE_SEED"] = str(settings.failure_seed)
    for context in DATABASE_CONTEXTS:
        if (own := getattr(settings, f"{context}_database_url")) is not None:
            env[f"{context.upper()}_DATABASE_URL"] = own
    return env


def with_connection_name(url: str, name: str) -> str:
    """The AMQP URL with `name=` in its query: aiormq hands it to the broker as the connection's name."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "name"] + [("name", name)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def tail(path: Path, lines: int) -> str:
    if not path.exists():
        return "(no output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class RoleProcess:
    """One `saga serve --role R` process, which can be stopped, killed and started again."""

    def __init__(self, role: str, name: str, env: dict[str, str], workdir: Path) -> None:
        self.role = role
        self.name = name
        # Named on the broker and the database, so that the copies of a role can be told apart.
        self.connection_name = f"{env['BUS_NAMESPACE']}/{name}"
        self.env = {**env, "AMQP_URL": with_connection_name(env["AMQP_URL"], self.connection_name),
                    "PGAPPNAME": self.connection_name}  # libpq names its PostgreSQL sessions so too
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self.port = 0
        self.starts = 0
        self.exit_codes: list[int] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._interrupted = False

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self.name} is not running"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Launch the process; `wait_until_healthy` waits for it to be up."""
        assert not self.running, f"{self.name} is running already"
        self.port, self.starts, self._interrupted = free_port(), self.starts + 1, False
        self._log = self.log_path.open("ab")
        self._log.write(f"--- start {self.starts} of {self.name} on port {self.port}\n".encode())
        self._log.flush()
        command = [*PYTHON_CLI, "serve", "--role", self.role, "--port", str(self.port)]
        # A session of its own: a Ctrl-C meant for pytest does not reach it, close() stops it.
        self._process = subprocess.Popen(
            command, env=self.env, cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_healthy(self, within: float = START_WITHIN) -> None:
        """Wait until the process answers /healthz on its port, as itself."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.running:
                self._reap()
                if self._lost_its_port() and self.starts < PORT_ATTEMPTS:
                    self.start()  # someone took the port before the process could bind it
                    continue
                raise AssertionError(f"{self.name} exited with {self.exit_codes[-1]}:\n{self.tail()}")
            if self._answers():
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not answer /healthz within {within} s:\n{self.tail()}")

    def _answers(self) -> bool:
        base = f"http://127.0.0.1:{self.port}"
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code != 200:
                return False
            # Whoever holds the port answers /healthz; a worker names its role in the old health route.
            reply = httpx.get(f"{base}/api/v1/health", timeout=5).json()
        except (httpx.TransportError, ValueError):
            return False
        return isinstance(reply, dict) and reply.get("data", {}).get("service") == self.role

    def _lost_its_port(self) -> bool:
        output = self.log_path.read_text(errors="replace")
        return "address already in use" in output[output.rfind("--- start "):]

    def interrupt(self) -> None:
        """SIGINT, once: a second one would make uvicorn skip its graceful shutdown."""
        if self.running and not self._interrupted:
            self._interrupted = True
            self._signal(signal.SIGINT)

    def stop(self) -> int:
        """SIGINT, as a supervisor stops a service; SIGKILL if it is not gone within STOP_WITHIN."""
        self.interrupt()
        return self._reap(STOP_WITHIN)

    def kill(self) -> int:
        """SIGKILL: the process dies at once, in whatever it was doing."""
        if self.running:
            self._signal(signal.SIGKILL)
        return self._reap()

    def history(self) -> str:
        """How often it started, how each run ended, and whether it is running now."""
        ends = [f"exited with {code}" for code in self.exit_codes]
        if self._process is not None:
            code = self._process.poll()
            ends.append("running" if code is None else f"exited with {code}")
        return f"started {self.starts} time(s): {', '.join(ends) or 'never ran'}"

    def restart(self) -> None:
        self.start()
        self.wait_until_healthy()

    def tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def _signal(self, signum: signal.Signals) -> None:
        assert self._process is not None
        self._process.send_signal(signum)
        assert self._log is not None
        self._log.write(f"--- test sent {signum.name} to {self.name}\n".encode())
        self._log.flush()

    def _reap(self, within: float = STOP_WITHIN) -> int:
        process = self._process
        if process is None:
            return self.exit_codes[-1] if self.exit_codes else 0
        try:
            code = process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            code = process.wait()
        self._process = None
        self.exit_codes.append(code)
        if self._log is not None:
            self._log.write(f"--- {self.name} exited with {code}\n".encode())
            self._log.close()
            self._log = None
        return code


class Cluster:
    """The roles of one test, all on the same stores and bus, and all stopped at the end."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.env = role_environment(settings)
        self.processes: list[RoleProcess] = []
        workdir.mkdir(parents=True, exist_ok=True)

    def migrate(self) -> None:
        """Create every table once, as a deployment does before its services start."""
        log_path = self.workdir / "migrate.log"
        with log_path.open("wb") as log:
            done = subprocess.run([*PYTHON_CLI, "migrate"], env=self.env, cwd=self.workdir, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=120, check=False)
        assert done.returncode == 0, f"saga migrate exited with {done.returncode}:\n{tail(log_path, 40)}"
        self.env["CREATE_TABLE"] = "n"

    def start(self, role: str, copies: int = 1) -> list[RoleProcess]:
        """Start `copies` processes of one role and wait until each is up."""
        return self.start_all([role] * copies)

    def start_all(self, roles: Iterable[str]) -> list[RoleProcess]:
        """Start a process per role named (a role named twice runs twice), all at once."""
        assert "CREATE_TABLE" in self.env, "migrate() first: roles run with CREATE_TABLE=n"
        started = []
        for role in roles:
            copy = 1 + sum(1 for p in self.processes if p.role == role)
            process = RoleProcess(role, f"{role}-{copy}", self.env, self.workdir)
            self.processes.append(process)
            process.start()
            started.append(process)
        for process in started:
            process.wait_until_healthy()
        return started

    def role(self, role: str) -> list[RoleProcess]:
        return [p for p in self.processes if p.role == role]

    def close(self) -> None:
        """Stop every process still running: SIGINT to all at once, then wait for each."""
        for process in self.processes:
            process.interrupt()
        for process in self.processes:
            process.stop()

    def report(self, lines: int = 40) -> str:
        """The last lines of every process's output, for a failing test."""
        parts = [f"===== migrate\n{tail(self.workdir / 'migrate.log', lines)}"]
        for process in self.processes:
            parts.append(f"===== {process.name} ({process.history()})\n{process.tail(lines)}")
        return "\n".join(parts)


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True,
                          timeout=60)
    return done.stdout


class Broker:
    """The local RabbitMQ node, as `rabbitmqctl` reports on one test's vhost, and restarts it."""

    def __init__(self, vhost: str) -> None:
        self.vhost = vhost

    def bytes_sent(self) -> dict[str, int]:
        """Bytes the broker has sent on each named connection of the vhost: its deliveries show here.

        The broker refreshes these counters every few seconds (5 by default), so they may lag.
        """
        rows = self._rows("list_connections", "vhost", "client_properties", "send_oct")
        return {
            name: int(row["send_oct"])
            for row in rows
            if row["vhost"] == self.vhost and (name := _connection_name(row))
        }

    def queue_depths(self) -> dict[str, int]:
        """Messages waiting in each queue of the vhost, delivered or not."""
        return {row["name"]: int(row["messages"]) for row in self._rows("list_queues", "name", "messages")}

    def restart(self) -> None:
        """Stop the broker application and start it again: every connection to it drops."""
        try:
            rabbitmqctl("stop_app")
        finally:
            rabbitmqctl("start_app")

    def _rows(self, command: str, *columns: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = json.loads(
            rabbitmqctl(command, "-p", self.vhost, "--formatter", "json", *columns) or "[]"
        )
        return rows


def _connection_name(row: dict[str, Any]) -> str | None:
    for key, _, value in row.get("client_properties") or ():
        if key == "connection_name":
            return str(value)
    return None

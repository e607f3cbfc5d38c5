"""A three-node RabbitMQ cluster on this machine, beside the main broker, for the scale-out tests.

    python -m infra.messaging.cluster start     # prints the three nodes' URLs, comma-separated
    python -m infra.messaging.cluster status
    python -m infra.messaging.cluster stop

Each node runs as the `rabbitmq` user (whose Erlang cookie they share) with its own node name
(`ra@localhost`, `rb@localhost`, `rc@localhost`), AMQP port (5681, 5682, 5683), distribution port
(25681 ...), data and log folders under `--dir`, and a config file of its own: the system's pins the
main broker's port, 5672. The first node starts the cluster and the other two join it. `stop` stops
the three and leaves their folders, so that the next `start` finds the cluster as it was; `start
--fresh` stops any that run and wipes their folders first. Needs the `rabbitmq-server` package,
and root to run the nodes as `rabbitmq`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

NAMES = ("ra", "rb", "rc")
AMQP_PORT = 5681
DIST_OFFSET = 20_000  # each node's distribution port: its AMQP port plus this
DEFAULT_DIR = Path("/var/lib/rabbitmq/saga-cluster")
RUN_AS = "rabbitmq"
STARTUP_SECONDS = 90


@dataclass(frozen=True)
class Node:
    name: str
    port: int
    home: Path

    @property
    def node(self) -> str:
        return f"{self.name}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        return {
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(self.port + DIST_OFFSET),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.home / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_PID_FILE": str(self.home / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }


def nodes(base: Path = DEFAULT_DIR, port: int = AMQP_PORT, prefix: str = "") -> list[Node]:
    """The three nodes: named `prefix` + ra, rb, rc (names are unique on a host), on ports from `port`."""
    return [Node(prefix + name, port + i, base / name) for i, name in enumerate(NAMES)]


def amqp_url(cluster: list[Node]) -> str:
    """The nodes' URLs, comma-separated."""
    return ",".join(node.url for node in cluster)


def _shell_line(node: Node, command: str) -> str:
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in node.env().items())
    return f"cd {shlex.quote(str(node.home))} && env {env} {command}"


def _as_rabbitmq(node: Node, command: list[str], *, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(["su", "-s", "/bin/sh", RUN_AS, "-c", _shell_line(node, shlex.join(command))],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        said = done.stderr.strip() or done.stdout.strip()
        raise RuntimeError(f"{node.node}: {' '.join(command)} failed: {said}")
    return done.stdout


def _ctl(node: Node, *args: str, check: bool = True, timeout: float = 120) -> str:
    return _as_rabbitmq(node, ["rabbitmqctl", "-n", node.node, *args], check=check, timeout=timeout)


def _prepare(node: Node, *, fresh: bool) -> None:
    if fresh and node.home.exists():
        shutil.rmtree(node.home)
    for folder in (node.home, node.home / "mnesia", node.home / "log"):
        folder.mkdir(parents=True, exist_ok=True)
    (node.home / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{node.port}\n")
    (node.home / "rabbitmq-env.conf").write_text("")  # in place of the system's, which names the main node
    (node.home / "enabled_plugins").write_text("[].\n")
    shutil.chown(node.home.parent, RUN_AS, RUN_AS)
    for path in [node.home, *node.home.rglob("*")]:
        shutil.chown(path, RUN_AS, RUN_AS)


def start_node(node: Node) -> None:
    """Start one node, in the background as the rabbitmq user; a node of a cluster rejoins it."""
    if _ping(node):
        return
    console = shlex.quote(str(node.home / "log" / "console.log"))
    line = _shell_line(node, f"nohup rabbitmq-server > {console} 2>&1 &")
    subprocess.run(["su", "-s", "/bin/sh", RUN_AS, "-c", line], check=True, timeout=30)
    # Until the node has registered, `await_startup` finds no node and fails at once.
    _wait_for(lambda: _ping(node), f"{node.node} to answer", STARTUP_SECONDS)
    _ctl(node, "await_startup", "--timeout", str(STARTUP_SECONDS), timeout=STARTUP_SECONDS + 30)


def _ping(node: Node) -> bool:
    try:
        _ctl(node, "ping", timeout=30)
    except (RuntimeError, subprocess.TimeoutExpired):
        return False
    return True


def members(node: Node) -> set[str]:
    """The nodes of the cluster `node` belongs to that are running."""
    status = json.loads(_ctl(node, "cluster_status", "--formatter", "json", timeout=30))
    return set(status.get("running_nodes", []))


def queue_names(node: Node, vhost: str = "/") -> list[str]:
    """The names of the queues of a vhost, as the node lists them."""
    return _ctl(node, "list_queues", "-p", vhost, "-q", "--no-table-headers", "name", timeout=60).split()


def start(cluster: list[Node], *, fresh: bool = False) -> str:
    """Start the three nodes (the first one alone, the others joining it); their URLs.

    `fresh`: stop them if they run, and wipe their data first.
    """
    if fresh:
        stop(cluster)
    for node in cluster:
        _prepare(node, fresh=fresh)
    first, *others = cluster
    start_node(first)
    for node in others:
        start_node(node)
        if first.node not in members(node):
            _ctl(node, "stop_app")
            _ctl(node, "reset")
            _ctl(node, "join_cluster", first.node)
            _ctl(node, "start_app")
    _wait_for(lambda: members(first) == {n.node for n in cluster}, "every node to be a running member")
    return amqp_url(cluster)


def stop_node(node: Node) -> None:
    if _ping(node):
        _ctl(node, "stop", timeout=120)


def stop(cluster: list[Node]) -> None:
    """Stop every node, the first last: it is the one to start first again."""
    for node in reversed(cluster):
        stop_node(node)


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the nodes' data and logs")
    parser.add_argument("--port", type=int, default=AMQP_PORT, help="the first node's AMQP port")
    parser.add_argument("--fresh", action="store_true", help="wipe the nodes' data first")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: the nodes run as the rabbitmq user", file=sys.stderr)
        return 2
    cluster = nodes(args.dir, args.port)
    if args.action == "start":
        print(start(cluster, fresh=args.fresh))
    elif args.action == "stop":
        stop(cluster)
    else:
        for node in cluster:
            print(f"{node.node} {node.url} {'running' if _ping(node) else 'stopped'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

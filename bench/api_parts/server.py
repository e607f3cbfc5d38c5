"""The server: `saga serve` on a free loopback port, every role to prepare, the API alone to measure."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.api_parts.config import RunFailed

SAMPLE = re.compile(r'^(\w+)\{([^}]*)\} ([0-9.e+]+)$', re.MULTILINE)


@dataclass
class Server:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    workers: int

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RunFailed(f"saga serve exited with {self.process.returncode}:\n{self.tail()}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(
    env: dict[str, str], work: Path, name: str, api_workers: int | None = None, *,
    wrapper: Sequence[str] = (), within: float = 120,
) -> Iterator[Server]:
    """`saga serve` on a free loopback port once every process of it is ready; SIGINT at the end.

    Every role in one process, or with `api_workers` the API alone in that many
    processes (`--role api --workers N`), which is what answers queries in production.
    `wrapper` is a command the server runs under (valgrind, say), given `within` seconds to be ready.
    """
    port = free_port()
    log_path = work / f"serve-{name}.log"
    argv = [*wrapper, sys.executable, "-m", "infra.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if api_workers is not None:
        argv += ["--role", "api", "--workers", str(api_workers)]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(argv, env=env, cwd=work, stdout=log_file, stderr=subprocess.STDOUT)
    server = Server("127.0.0.1", port, process, log_path, api_workers or 1)
    try:
        wait_until_ready(server, within=within)
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_until_ready(server: Server, within: float) -> None:
    """Until /readyz answers 200 from every worker (each new connection reaches one of them)."""
    deadline = time.monotonic() + within
    ready: set[Any] = set()
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            answer = httpx.get(f"{server.base}/readyz", timeout=2)
            if answer.status_code == 200:
                ready.add(answer.json().get("worker") if server.workers > 1 else 1)
                if len(ready) >= server.workers:
                    return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise RunFailed(f"saga serve was not ready within {within} s ({len(ready)} of {server.workers} "
                    f"workers):\n{server.tail()}")


def graphql_counts(server: Server) -> tuple[int, int, int]:
    """How many GraphQL requests every worker answered and how many operations it ran since it started.

    The API keeps answers of `order` and `orders` (read_api/answer_cache.py): a kept answer
    is counted as a request (`http_requests_total`, every POST: the bench posts only to
    /graphql) but runs no operation (`graphql_operations_total`). Each scrape reaches one
    worker, on a new connection; the workers are told apart by their figures, which stand
    still while no load runs. The third figure is how many workers answered the scrapes.
    """
    seen: set[tuple[float, float]] = set()
    for _ in range(20 * server.workers):
        try:
            text = httpx.get(f"{server.base}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        requests = operations = 0.0
        for metric, labels, value in SAMPLE.findall(text):
            if metric == "http_requests_total" and 'method="POST"' in labels:
                requests += float(value)
            elif metric == "graphql_operations_total" and 'type="query"' in labels:
                operations += float(value)
        seen.add((requests, operations))
        if len(seen) >= server.workers:
            break
    return int(sum(r for r, _ in seen)), int(sum(o for _, o in seen)), len(seen)


def answers_kept(workers: int, before: tuple[int, int, int], after: tuple[int, int, int]) -> dict[str, Any]:
    """The GraphQL requests between two counts, how many ran an operation, and how many were kept answers;
    no share when a scrape did not reach every worker."""
    requests, operations = after[0] - before[0], after[1] - before[1]
    whole = requests > 0 and min(before[2], after[2]) >= workers
    return {
        "graphql_requests": requests, "operations_run": operations, "answered_kept": requests - operations,
        "ran_share": round(operations / requests, 4) if whole else None,
        "kept_share": round(1 - operations / requests, 4) if whole else None,
        "workers_seen": min(before[2], after[2]),
    }

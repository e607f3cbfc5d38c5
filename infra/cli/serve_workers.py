"""`saga serve --role api --workers N`: the API in N processes sharing one port.

Only the read side is multiplied: the api role answers queries from the read
store and sends mutations to the write side, whose exactly-once path (each
command's id recorded with its events, one transaction) holds whichever
process sent it. Each worker is `saga serve --role api` itself, listening on
the same port with SO_REUSEPORT, so the kernel deals connections among them;
each has its own lifespan, readiness, answer cache and /metrics (a scrape
reaches one of them). The parent creates the tables first, so
that the workers never race to create them, forwards SIGINT and SIGTERM, and
exits 0 once they all stopped as asked; a worker that ends on its own stops
the others, and its exit code (never 0) is the parent's.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

WORKER_ENV = "SAGA_API_WORKER"
"""Set in each worker's environment: its number, from 1; tells it to share the port."""
STOP_SECONDS = 20.0
STOPPED = frozenset(
    {0} | {code for signum in (signal.SIGINT, signal.SIGTERM) for code in (-signum, 128 + signum)})
"""Exit codes of a worker that stopped as asked: `saga serve` ends 130 on SIGINT, as a shell would."""


def shared_socket(host: str, port: int) -> socket.socket:
    """A listening socket on host:port that the other workers' sockets share (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def worker_number() -> int | None:
    """This process's number among the API's workers; None when it serves alone."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value and value.isdigit() else None


def run_workers(workers: int, host: str, port: int) -> int:
    """Start `workers` copies of `saga serve --role api` on host:port and wait for them; their exit code."""
    argv = [sys.executable, "-m", "infra.cli", "serve", "--role", "api", "--host", host, "--port", str(port)]
    children = [
        subprocess.Popen(argv, env={**os.environ, WORKER_ENV: str(n), "CREATE_TABLE": "n"})
        for n in range(1, workers + 1)
    ]
    stopping = False

    def forward(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
        ended = None if stopping else next(child for child in children if child.poll() is not None)
        if ended is not None:  # one worker ended on its own: the others stop too
            forward(signal.SIGTERM, None)
        deadline = time.monotonic() + STOP_SECONDS
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if ended is not None:  # serving stopped without being asked: never a success
        return ended.returncode or 1
    codes = [child.returncode for child in children]
    return next((code for code in codes if code not in STOPPED), 0)

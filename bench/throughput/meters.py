"""What a run costs and what disturbed it: CPU by process and by role (Linux /proc), the peak PostgreSQL
connections, and the AMQP client's complaints of a lost broker."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import threading
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from infra.settings import Settings

log = logging.getLogger("bench.saga_throughput")

TICK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0


def host_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle, sum(v[:8])


def process_cpu(pid: int) -> tuple[str, float] | None:
    """(command name, CPU seconds so far) of one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / TICK


def processes_cpu() -> dict[int, tuple[str, float]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = process_cpu(int(entry))
            if found is not None:
                out[int(entry)] = found
    return out


class CpuMeter:
    """CPU used during a run: the host, this process, each named worker, and by command name."""

    def __init__(self, workers: dict[str, int] | None = None) -> None:
        self.workers = workers or {}

    def start(self) -> None:
        self.load0 = os.getloadavg()[0]
        self.host0 = host_cpu()
        self.self0 = resource.getrusage(resource.RUSAGE_SELF)
        self.procs0 = processes_cpu()

    def stop(self) -> dict[str, Any]:
        host1, self1, procs1 = host_cpu(), resource.getrusage(resource.RUSAGE_SELF), processes_cpu()
        by_name: dict[str, float] = defaultdict(float)
        for pid, (name, cpu) in procs1.items():
            was = self.procs0.get(pid)
            by_name[name] += cpu - (was[1] if was and was[0] == name else 0.0)
        roles = {
            role: round(procs1[pid][1] - self.procs0[pid][1], 2)
            for role, pid in self.workers.items() if pid in procs1 and pid in self.procs0
        }
        busy, total = host1[0] - self.host0[0], host1[1] - self.host0[1]
        return {
            "loadavg_1m_at_start": round(self.load0, 2),
            "host_busy_pct": round(100.0 * busy / total, 1) if total > 0 else None,
            "host_cpus": os.cpu_count(),
            "bench_process_s": round(
                (self1.ru_utime - self.self0.ru_utime) + (self1.ru_stime - self.self0.ru_stime), 2
            ),
            "by_command_s": {
                k: round(v, 2) for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])[:6] if v >= 0.05
            },
            **({"worker_roles_s": roles} if roles else {}),
        }


class ConnectionSampler:
    """The most server connections the run's databases had at once, sampled every second."""

    def __init__(self, settings: Settings) -> None:
        databases = list(settings.databases)
        self.dsn = databases[0] if databases else None
        self.names = sorted({dsn.dbname for dsn in databases})
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-connections", daemon=True)

    def start(self) -> None:
        if self.dsn is not None:
            self._thread.start()

    def stop(self) -> int | None:
        if self.dsn is None:
            return None
        self._stop.set()
        self._thread.join(10)
        return self.peak

    def _run(self) -> None:
        assert self.dsn is not None
        try:
            with psycopg.connect(self.dsn.url, autocommit=True) as conn:
                while not self._stop.is_set():
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)", (self.names,)
                    ).fetchone()
                    self.peak = max(self.peak, int(row[0]) if row else 0)
                    self._stop.wait(1.0)
        except psycopg.Error as error:
            log.warning("could not count connections: %s", error)


class BrokerTrouble(logging.Handler):
    """Counts the AMQP client's complaints (lost connections, reconnects) while a run is measured:
    a broker restarted by someone else spoils the figures, though the run still ends and verifies."""

    LOGGERS = ("aiormq.connection", "aio_pika.robust_connection", "aio_pika.connection")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1

    def __enter__(self) -> BrokerTrouble:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


def broker_trouble_in_logs(paths: Sequence[Path]) -> int:
    marks = ("Connection attempt", "Unexpected connection close", "error when creating transport")
    count = 0
    for path in paths:
        with contextlib.suppress(OSError):
            count += sum(1 for line in path.read_text(errors="replace").splitlines()
                         if any(mark in line for mark in marks))
    return count

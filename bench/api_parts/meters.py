"""CPU: who used the shared cores while measuring. The server is its process and every process under
it (the API's workers); the client is this bench and its load processes; PostgreSQL and RabbitMQ are
their processes by name; anything else is the host's, and disturbs the measurement past a share."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
SERVICES = {"postgres": "postgres", "beam.smp": "rabbitmq", "erl_child_setup": "rabbitmq", "epmd": "rabbitmq"}
GROUPS = ("server", "client", "postgres", "rabbitmq")
KERNEL = ("kworker", "ksoftirqd", "kdamond", "rcu", "migration", "kcompactd", "jbd2", "kswapd")
DISTURBED_SHARE = 0.1
"""A measurement is disturbed when other processes took more than this share of the cores."""

Snapshot = dict[int, tuple[str, int, float]]
"""pid -> (command, parent pid, CPU seconds since it started, its threads included)."""


def host_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the host since boot."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def processes() -> Snapshot:
    found: Snapshot = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = (entry / "stat").read_text()
                name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
                found[int(entry.name)] = (name, int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK)
    return found


def tree(root: int, *snapshots: Snapshot) -> set[int]:
    """`root` and every process under it in any of the snapshots."""
    parents = {pid: ppid for snapshot in snapshots for pid, (_, ppid, _) in snapshot.items()}
    found = {root}
    grew = True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


class CpuMeter:
    """CPU seconds of the server, the client, PostgreSQL, RabbitMQ and the rest; host busy %."""

    def __init__(self, server_pid: int, load_pids: set[int]) -> None:
        self.server_pid = server_pid
        self.client = load_pids | {os.getpid()}
        self.host = host_ticks()
        self.start = processes()

    def stop(self, wall: float) -> dict[str, Any]:
        busy0, total0 = self.host
        busy1, total1 = host_ticks()
        end = processes()
        server = tree(self.server_pid, self.start, end)
        by_group: defaultdict[str, float] = defaultdict(float)
        others: defaultdict[str, float] = defaultdict(float)
        for pid, (name, _, seconds) in end.items():
            spent = seconds - self.start.get(pid, (name, 0, 0.0))[2]
            if pid in server:
                by_group["server"] += spent
            elif pid in self.client:
                by_group["client"] += spent
            elif name in SERVICES:
                by_group[SERVICES[name]] += spent
            elif not name.startswith(KERNEL):
                others[name] += spent
        cores = os.cpu_count() or 1
        others_s = sum(others.values())
        return {
            "host_busy_pct": round(100 * (busy1 - busy0) / max(1, total1 - total0)),
            "cores": cores,
            **{f"{group}_s": round(by_group[group], 2) for group in GROUPS},
            "others_s": round(others_s, 2),
            "busiest_others_s": {k: round(v, 2) for k, v in sorted(others.items(), key=lambda kv: -kv[1])[:4]
                                 if v >= 0.05},
            "disturbed": others_s > DISTURBED_SHARE * wall * cores,
        }


def until_quiet(server_pid: int, within: float) -> None:
    """Wait (up to `within` seconds) until other processes leave the cores alone for a second."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        meter = CpuMeter(server_pid, set())
        time.sleep(1.0)
        if not meter.stop(1.0)["disturbed"]:
            return
    if within > 0:
        print(f"  the host did not quieten within {within:g} s: measuring anyway", file=sys.stderr)

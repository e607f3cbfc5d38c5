"""Keeping a serving process's threads on one CPU (`CPU_AFFINITY`), or on the CPUs named.

A process runs Python on one core at a time (the GIL), yet hands each message
between threads: the event loop's, and the worker threads that run the event
store's calls. Left to the scheduler, those threads land on different cores:
each hand-off wakes a thread on another core, takes the GIL from there, and
finds that core's caches cold. Kept on one core, a hand-off is a switch on the
same core, whose caches hold the interpreter's working set (`bench/README.md`
prices both).

    CPU_AFFINITY=        the scheduler places the threads (the default)
    CPU_AFFINITY=one     one CPU among those the process may use, chosen by `index`
                         (an API worker's number) or else the process id, so that
                         several processes on a host spread over the CPUs
    CPU_AFFINITY=0,2     these CPUs

Only Linux can keep threads to CPUs; elsewhere the setting is refused at start-up.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ONE = "one"


def parse_cpus(spec: str) -> str:
    """`spec` checked and normalised ('' or 'one' or '0,2'); ValueError saying what is wrong."""
    spec = spec.strip().lower()
    if spec in ("", ONE):
        return spec
    parts = [part.strip() for part in spec.split(",")]
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"{spec!r} is neither 'one' nor a list of CPU numbers such as 0,2")
    return ",".join(str(n) for n in sorted({int(part) for part in parts}))


def keep_to_cpus(spec: str, *, index: int | None = None) -> frozenset[int] | None:
    """Keep every thread of this process, and those it starts later, on the CPUs `spec` names.

    Returns the CPUs, or None when `spec` is empty (the scheduler's choice stands).
    Raises ValueError for CPUs this process may not use, and on a system that
    cannot keep threads to CPUs.
    """
    spec = parse_cpus(spec)
    if not spec:
        return None
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError("CPU_AFFINITY needs Linux: this system cannot keep threads to CPUs")
    allowed = sorted(os.sched_getaffinity(0))
    if spec == ONE:
        chosen = frozenset({allowed[(os.getpid() if index is None else index) % len(allowed)]})
    else:
        chosen = frozenset(int(n) for n in spec.split(","))
        if not chosen <= set(allowed):
            raise ValueError(f"CPU_AFFINITY names CPUs {sorted(chosen - set(allowed))}, "
                             f"which this process may not use (it may use {allowed})")
    # Every thread running now (this one, a connection pool's, a tracer's) by its own id; threads
    # started later inherit the mask of the thread that starts them.
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), chosen)
    return chosen

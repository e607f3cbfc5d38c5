"""Keeping a serving process's threads on one CPU (`CPU_AFFINITY`), or on the CPUs named.

A process runs Python on one core at a time (the GIL), yet hands each message
between threads: the event loop's, and the worker threads that run the event
store's calls. Left to the scheduler, those threads land on different cores:
each hand-off wakes a thread on another core, takes the GIL from there, and
finds that core's caches cold. Kept on one core, a hand-off is a switch on the
same core, whose caches hold the interpreter's working set (`bench/README.md`
prices both).

    CPU_AFFINITY=        (the default) one CPU for a process that runs every role, and
                         for each of the API's workers; the scheduler's choice for a
                         process that runs some of the roles, which may share few
                         cores with other role processes the scheduler must spread
    CPU_AFFINITY=one     one CPU among those the process may use, chosen by `index`
                         (an API worker's number) or else the process id, so that
                         several processes on a host spread over the CPUs
    CPU_AFFINITY=any     the scheduler places the threads
    CPU_AFFINITY=0,2     these CPUs

Only Linux can keep threads to CPUs: elsewhere the default leaves them to the
scheduler, and any other setting is refused at start-up.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

ONE = "one"
ANY = "any"


def parse_cpus(spec: str) -> str:
    """`spec` checked and normalised ('', 'one', 'any' or '0,2'); ValueError saying what is wrong."""
    spec = spec.strip().lower()
    if spec in ("", ONE, ANY):
        return spec
    parts = [part.strip() for part in spec.split(",")]
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"{spec!r} is neither 'one' nor 'any' nor a list of CPU numbers such as 0,2")
    return ",".join(str(n) for n in sorted({int(part) for part in parts}))


def serving_cpus(spec: str, *, every_role: bool, worker: int | None = None) -> str:
    """What a serving process keeps its threads to: `spec`, or for the default what the process runs.

    One CPU for a process that runs every role, or is one of the API's workers (`worker`, its
    number); the scheduler's choice ('') for a process that runs some of the roles. Where
    threads cannot be kept to CPUs, the default leaves them to the scheduler.
    """
    spec = parse_cpus(spec)
    if spec == ANY:
        return ""
    if spec:
        return spec
    return ONE if (every_role or worker is not None) and hasattr(os, "sched_setaffinity") else ""


def keep_to_cpus(spec: str, *, index: int | None = None) -> frozenset[int] | None:
    """Keep every thread of this process, and those it starts later, on the CPUs `spec` names.

    Returns the CPUs, or None when `spec` is empty or 'any' (the scheduler's choice stands).
    Raises ValueError for CPUs this process may not use, and on a system that
    cannot keep threads to CPUs.
    """
    spec = parse_cpus(spec)
    if spec in ("", ANY):
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

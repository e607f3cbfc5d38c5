"""Rebuilding projections in several processes at once (`saga projections rebuild --jobs N`).

A projection's replay is Python work, one core's worth, with the database
working beside it. With more than one core, the projections are shared out to
worker processes, the largest first, each to the process with the fewest
notifications to replay so far, so a rebuild of every read model takes about
as long as its largest projection rather than the sum of them all. Each process
gets its share at once and rebuilds it side by side, as one process would: it
starts its applications and opens its connections once, not once a projection. Each
projection is still rebuilt and swapped in exactly as in one process
(`projections.rebuild`), by its own transaction, while the live tables serve.
Each process runs its loop as a serving process does (`run_event_loop`): a
replay makes millions of short-lived objects, and the garbage collector's
default pace would spend as much CPU as the replay itself. While it replays,
the cycle collector is off altogether (`collector_paused`): the rows it keeps
between writes are frozen values that form no cycles, and its young passes,
which found them all alive, cost a tenth of a rebuild.

    rebuilt = rebuild_projections(settings, None, jobs=default_jobs(), progress=bar_update)
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.queues import Queue
from typing import TypeAlias

from infra.bootstrap import System, bootstrap, projector
from infra.runtime import collector_paused, run_event_loop
from infra.settings import Settings
from projections.catalog import AnyProjection, named
from projections.rebuild import Progress, rebuild

MAX_JOBS = 4

News: TypeAlias = "Queue[tuple[str, int, int] | None]"
"""A worker process's line to the parent's progress bar: (projection, done, total), then None at its end."""

_news: News | None = None


def default_jobs() -> int:
    """One process per core, up to four.

    SQLite lets one writer in at a time, but a batch's write is short beside the
    Python work that prepares it: two processes rebuilt a million events a third
    faster than one there too.
    """
    return max(1, min(MAX_JOBS, os.cpu_count() or 1))


def rebuild_projections(
    settings: Settings, names: Sequence[str] | None, *, jobs: int, progress: Progress | None = None
) -> list[str]:
    """Rebuild the named projections (all for None) with up to `jobs` processes; their names."""
    projections = named(names)
    if jobs <= 1 or len(projections) <= 1:
        with bootstrap(settings) as system:
            return run_event_loop(_rebuild_here(system, [p.name for p in projections], progress))
    with bootstrap(settings) as system:
        heads = {app.name: app.recorder.max_notification_id() or 0 for app in system.applications}
    shares = shared_out(projections, heads, jobs)
    context = multiprocessing.get_context(start_method())
    news: News = context.Queue()
    with ProcessPoolExecutor(len(shares), mp_context=context, initializer=_listen, initargs=(news,)) as pool:
        # The tables exist now (bootstrap above): workers starting together must not race to create them.
        quiet = settings.model_copy(update={"create_table": False})
        futures = [pool.submit(_rebuild_share, quiet, share) for share in shares]
        _report(news, futures, progress)
        rebuilt = {name for future in futures for name in future.result()}  # the first failure raises here
    return [p.name for p in projections if p.name in rebuilt]


def start_method() -> str:
    """How worker processes start: forked on Linux where no other thread runs, else spawned.

    A forked worker starts with the parent's modules imported, where a spawned one imports them
    again (about a second before its first window). It shares no connection with the parent,
    which has closed its stores by then. A thread's locks would be copied as they stand, a lock
    another thread held left held in the child for good: with any other thread running, the
    workers are spawned. So they are on macOS, whose system libraries are not safe to fork.
    """
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


def shared_out(projections: Sequence[AnyProjection], heads: dict[str, int], jobs: int) -> list[list[str]]:
    """The projections' names in at most `jobs` shares, the largest first, each to the smallest share."""
    count = max(1, min(jobs, len(projections)))
    sizes = [0] * count
    shares: list[list[str]] = [[] for _ in range(count)]
    for projection in sorted(projections, key=lambda p: _size(p, heads), reverse=True):
        smallest = min(range(count), key=lambda i: (sizes[i], len(shares[i])))
        sizes[smallest] += _size(projection, heads)
        shares[smallest].append(projection.name)
    return [names for names in shares if names]


def _size(projection: AnyProjection, heads: dict[str, int]) -> int:
    return sum(heads.get(name, 0) for name in projection.applications)


def _report(news: News, futures: Sequence[Future[list[str]]], progress: Progress | None) -> None:
    """Pass the workers' progress on until each share has said it ended, or a worker died without a word.

    A share's last word (None) comes after everything it said: a result can reach the parent before
    the progress its worker put on the queue just before, and waiting for a quiet queue instead
    would add its wait to every rebuild.
    """
    ended = 0
    while ended < len(futures):
        try:
            said = news.get(timeout=0.1)
        except queue.Empty:
            if all(future.done() for future in futures) and any(future.exception() for future in futures):
                return  # a worker process died: the parent raises its error
            continue
        if said is None:
            ended += 1
        elif progress is not None:
            progress(*said)


def _listen(news: News) -> None:
    global _news
    _news = news


def _rebuild_share(settings: Settings, names: list[str]) -> list[str]:
    """In a worker process: rebuild these projections side by side, telling the parent how far they got."""

    def tell(projection: str, done: int, total: int) -> None:
        if _news is not None:
            _news.put((projection, done, total))

    try:
        with bootstrap(settings) as system:
            return run_event_loop(_rebuild_here(system, names, tell))
    finally:
        if _news is not None:
            _news.put(None)  # the share's last word, failed or not


async def _rebuild_here(system: System, names: list[str], progress: Progress | None) -> list[str]:
    # A rebuild follows nothing live, so it needs no news of saves elsewhere.
    async with projector(system) as replaying:
        with collector_paused():
            return await rebuild(replaying, names, progress=progress)

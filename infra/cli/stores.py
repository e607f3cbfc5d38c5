"""Where the embedded default keeps its data under DATA_DIR, whether it is there, and who uses it.

`saga serve` without DATABASE_URL keeps one SQLite file per application (the event
stores), the read store and, without AMQP_URL, the in-process bus's queues in DATA_DIR.
Commands that only read look for those files first: opening SQLite creates what it does
not find, and a store created by reading is an empty one that answers "no order".

While it runs, the embedded `saga serve` holds DATA_DIR/serve.lock (an flock, which the
system releases when the process ends however it ends), so that `saga reset` never
deletes a store under a running server, nor a second server shares it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.bootstrap import APPLICATION_NAMES
from infra.settings import Settings

# The names infra/eventstore/persistence.py gives the applications' SQLite files.
EVENT_STORES = tuple(f"{name.lower()}.sqlite" for name in APPLICATION_NAMES)
READ_STORE = "read.sqlite"
BUS_QUEUES = "bus.sqlite"
SERVE_LOCK = "serve.lock"
# SQLite's companions of a database file: the write-ahead log, its index, the rollback journal.
COMPANIONS = ("", "-wal", "-shm", "-journal")


def keeps_data_dir(settings: Settings) -> bool:
    """Whether the stores are files under DATA_DIR: the embedded default, unless DATABASE_URL=memory://."""
    return settings.is_embedded and not settings.is_in_memory


class NoStoreError(Exception):
    """DATA_DIR holds no store, or only part of one; the message says what to do."""


class StoreInUseError(Exception):
    """Another process holds DATA_DIR's lock; the message names it and its process id."""


def find_event_stores(data_dir: Path) -> None:
    """Raise NoStoreError unless DATA_DIR holds every application's event store."""
    missing = [name for name in EVENT_STORES if not (data_dir / name).is_file()]
    if len(missing) == len(EVENT_STORES):
        raise NoStoreError(_nothing_in(data_dir, "DATABASE_URL"))
    if missing:
        raise NoStoreError(f"the store in {data_dir.absolute()} (DATA_DIR) lacks {', '.join(missing)}: "
                           "run `saga migrate` there to complete it, or set DATA_DIR or DATABASE_URL")


def find_bus_queues(data_dir: Path) -> None:
    """Raise NoStoreError unless DATA_DIR holds the in-process bus's queues."""
    if not (data_dir / BUS_QUEUES).is_file():
        raise NoStoreError(_nothing_in(data_dir, "AMQP_URL"))


def _nothing_in(data_dir: Path, elsewhere: str) -> str:
    return (f"no store in {data_dir.absolute()} (DATA_DIR): start `saga serve` there first, "
            f"or set DATA_DIR or {elsewhere}")


def stored_files(data_dir: Path) -> list[Path]:
    """Every file of the stores and the bus's queues in DATA_DIR, as they are now."""
    names = (*EVENT_STORES, READ_STORE, BUS_QUEUES)
    paths = (data_dir / f"{name}{suffix}" for name in names for suffix in COMPANIONS)
    return [path for path in paths if path.is_file()]


@contextmanager
def holding(data_dir: Path, holder: str) -> Iterator[None]:
    """Hold DATA_DIR's lock while the block runs, or raise StoreInUseError at once if another process does.

    `holder` says who holds it ("`saga serve`"), for the message another process gets.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / SERVE_LOCK, "a+") as lock:  # never truncated until held: it names the holder
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid, _, other = lock.read().strip().partition(" ")
            raise StoreInUseError(f"{other or 'another process'} (pid {pid or '?'}) is using "
                                  f"{data_dir.absolute()} (DATA_DIR)") from None
        lock.truncate(0)
        lock.write(f"{os.getpid()} {holder}\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

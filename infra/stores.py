"""Where the embedded default keeps its data under DATA_DIR, and whether it is there.

`saga serve` without DATABASE_URL keeps one SQLite file per application (the event
stores), the read store and, without AMQP_URL, the in-process bus's queues in DATA_DIR.
Commands that only read look for those files first: opening SQLite creates what it does
not find, and a store created by reading is an empty one that answers "no order".
"""

from __future__ import annotations

from pathlib import Path

from infra.bootstrap import APPLICATION_NAMES

# The names infra/persistence.py gives the applications' SQLite files.
EVENT_STORES = tuple(f"{name.lower()}.sqlite" for name in APPLICATION_NAMES)
READ_STORE = "read.sqlite"
BUS_QUEUES = "bus.sqlite"


class NoStoreError(Exception):
    """DATA_DIR holds no store, or only part of one; the message says what to do."""


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

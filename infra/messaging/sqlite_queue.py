"""The in-process bus's queues, kept in one SQLite file (or in memory).

Every binding of a queue to an exchange is a row, and so is every message a
queue holds, waiting, out with a consumer, waiting for its retry, or parked.
So a restart finds the queues exactly as they were, like durable queues on
RabbitMQ, and another process (the CLI) sees and re-drives what was parked.

A message is ready when it is not parked, not taken, and due (`due_at`, epoch
seconds: when it was published, re-driven, or its retry delay ends); queues
deliver in order of (due_at, id), so a retry comes back behind what was
waiting, as it does through a TTL retry queue. Each method is one transaction
and blocks: the bus calls them from its one worker thread.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from infra.messaging.bus import UnroutableError, Verdict

SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_bindings (
    exchange TEXT NOT NULL,
    binding_key TEXT NOT NULL,
    queue TEXT NOT NULL,
    PRIMARY KEY (exchange, binding_key, queue)
);
CREATE TABLE IF NOT EXISTS bus_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    message_type TEXT NOT NULL,
    body BLOB NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    due_at REAL NOT NULL,
    taken_by TEXT,
    error TEXT,
    dead_letter_id TEXT UNIQUE,
    parked_at TEXT
);
CREATE INDEX IF NOT EXISTS bus_messages_ready ON bus_messages (queue, due_at, id)
    WHERE dead_letter_id IS NULL;
"""
_COLUMNS = "id, queue, exchange, routing_key, message_type, body, attempt"


@lru_cache(maxsize=4096)
def topic_matches(binding_key: str, routing_key: str) -> bool:
    """AMQP topic matching: `*` is exactly one word, `#` zero or more."""
    return _match(tuple(binding_key.split(".")), tuple(routing_key.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return _match(rest, words) or (bool(words) and _match(pattern, words[1:]))
    return bool(words) and head in ("*", words[0]) and _match(rest, words[1:])


class Outgoing(NamedTuple):
    routing_key: str
    body: bytes
    message_type: str


@dataclass(frozen=True)
class Stored:
    """A message as its queue holds it."""

    id: int
    queue: str
    exchange: str
    routing_key: str
    message_type: str
    body: bytes
    attempt: int


@dataclass(frozen=True)
class Settlement:
    """What becomes of a taken message: deleted, due again after `delay`, or parked with `error`."""

    message: Stored
    verdict: Verdict
    error: str = ""
    delay: float = 0.0


@dataclass(frozen=True)
class Parked:
    dead_letter_id: str
    queue: str
    message_type: str
    error: str
    attempts: int
    parked_at: datetime
    body: bytes


class SqliteQueues:
    """Queues and bindings in SQLite: a file in WAL mode, or memory when `path` is None."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            ":memory:" if path is None else path, timeout=30, isolation_level=None, check_same_thread=False
        )
        if path is not None:
            self._db.execute("PRAGMA journal_mode = WAL")
        # A publish returning is the broker's confirm: like the relay's position, it outlives a power cut.
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def declare(self, queue: str, exchange: str, binding_keys: Sequence[str], consumer: str) -> None:
        """Bind `queue` for good, and make ready what a consumer that is gone had taken from it.

        The embedded system consumes each queue from one process, so another consumer's
        messages are those of a process that stopped before settling them.
        """
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO bus_bindings (exchange, binding_key, queue) VALUES (?, ?, ?)",
                [(exchange, key, queue) for key in binding_keys],
            )
            db.execute(
                "UPDATE bus_messages SET taken_by = NULL WHERE queue = ? AND taken_by IS NOT NULL"
                " AND taken_by != ?", (queue, consumer),
            )

    def publish(self, exchange: str, messages: Sequence[Outgoing], at: datetime) -> set[str]:
        """Put each message on every queue bound to its key; all of them or, if one is unroutable, none."""
        with self._transaction() as db:
            bindings = db.execute(
                "SELECT binding_key, queue FROM bus_bindings WHERE exchange = ?", (exchange,)
            ).fetchall()
            rows, unroutable = [], []
            for message in messages:
                queues = sorted({queue for key, queue in bindings if topic_matches(key, message.routing_key)})
                unroutable += [] if queues else [message.routing_key]
                rows += [(queue, exchange, *message, at.timestamp()) for queue in queues]
            if unroutable:
                raise UnroutableError(exchange, unroutable)
            db.executemany(
                "INSERT INTO bus_messages (queue, exchange, routing_key, body, message_type, due_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", rows,
            )
        return {row[0] for row in rows}

    def take(self, queue: str, consumer: str, limit: int, at: datetime) -> list[Stored]:
        """Up to `limit` ready messages of `queue`, in order, now out with `consumer`."""
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM bus_messages WHERE queue = ? AND dead_letter_id IS NULL"
                " AND taken_by IS NULL AND due_at <= ? ORDER BY due_at, id LIMIT ?",
                (queue, at.timestamp(), limit),
            ).fetchall()
            db.executemany("UPDATE bus_messages SET taken_by = ? WHERE id = ?",
                           [(consumer, row[0]) for row in rows])
        return [Stored(*row) for row in rows]

    def settle(self, consumer: str, settlements: Sequence[Settlement], at: datetime) -> None:
        def of(verdict: Verdict) -> list[Settlement]:
            return [s for s in settlements if s.verdict is verdict]

        with self._transaction() as db:
            db.executemany(
                "DELETE FROM bus_messages WHERE id = ? AND taken_by = ?",
                [(s.message.id, consumer) for s in of(Verdict.DONE)],
            )
            db.executemany(
                "UPDATE bus_messages SET attempt = ?, due_at = ?, error = ?, taken_by = NULL"
                " WHERE id = ? AND taken_by = ?",
                [(s.message.attempt + 1, at.timestamp() + s.delay, s.error, s.message.id, consumer)
                 for s in of(Verdict.RETRY)],
            )
            db.executemany(
                "UPDATE bus_messages SET dead_letter_id = ?, error = ?, parked_at = ?, taken_by = NULL"
                " WHERE id = ? AND taken_by = ?",
                [(f"{s.message.queue}:{uuid.uuid4().hex}", s.error, at.isoformat(timespec="microseconds"),
                  s.message.id, consumer) for s in of(Verdict.PARK)],
            )

    def make_due(self, message_id: int, attempt: int, at: datetime) -> None:
        """Ready a retry now: its delay has passed by the bus's own timer."""
        with self._transaction() as db:
            db.execute(
                "UPDATE bus_messages SET due_at = MIN(due_at, ?) WHERE id = ? AND attempt = ?"
                " AND dead_letter_id IS NULL AND taken_by IS NULL", (at.timestamp(), message_id, attempt),
            )

    def release(self, consumer: str) -> None:
        """Give back every message `consumer` took and did not settle, as a closing channel does."""
        with self._transaction() as db:
            db.execute("UPDATE bus_messages SET taken_by = NULL WHERE taken_by = ?", (consumer,))

    def dead_letters(self, queue: str | None) -> list[Parked]:
        rows = self._db.execute(
            "SELECT dead_letter_id, queue, message_type, error, attempt, parked_at, body FROM bus_messages"
            " WHERE dead_letter_id IS NOT NULL AND (? IS NULL OR queue = ?) ORDER BY parked_at, id",
            (queue, queue),
        ).fetchall()
        return [
            Parked(letter_id, name, message_type, error, attempts, datetime.fromisoformat(parked_at), body)
            for letter_id, name, message_type, error, attempts, parked_at, body in rows
        ]

    def redrive(self, dead_letter_id: str, at: datetime) -> str | None:
        """Back to its queue as a first attempt, behind what waits there; its queue, if it was parked."""
        with self._transaction() as db:
            row = db.execute(
                "UPDATE bus_messages SET dead_letter_id = NULL, error = NULL, parked_at = NULL, attempt = 1,"
                " due_at = ?, taken_by = NULL WHERE dead_letter_id = ? RETURNING queue",
                (at.timestamp(), dead_letter_id),
            ).fetchone()
        return None if row is None else str(row[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

"""Which messages the consumers parked, and why.

Parked messages are not events in any application's log: they live in the bus
(RabbitMQ's `<queue>.dead` queues, or the embedded bus's file). So this read
model is not folded from events but copied: the projector asks the bus for its
parked messages every few seconds, and after a re-drive, and replaces the table
in one transaction. The API reads the table, like every other read model, and
never has to hold parked messages off their queue to list them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from projections.read_model import DeadLetterRow, ParkedMessage
from projections.store import ReadStore, TableSpec, as_time

TABLE = TableSpec(
    "read_dead_letters",
    (("id", "text"), ("queue", "text"), ("message_type", "text"), ("error", "text"), ("attempts", "int"),
     ("parked_at", "ts")),
    ("id",),
)


class DeadLetterSource(Protocol):
    """The part of the bus that lists parked messages (both of infra's buses fit)."""

    async def dead_letters(self, queue: str | None = None) -> Sequence[ParkedMessage]: ...


async def replace_all(store: ReadStore, parked: Sequence[ParkedMessage]) -> None:
    async with store.transaction() as tx:
        await tx.execute(f"DELETE FROM {TABLE.name}")
        await tx.executemany(
            TABLE.upsert_statement(),
            [(p.id, p.queue, p.message_type, p.error, p.attempts, p.parked_at) for p in parked],
        )


async def dead_letters(store: ReadStore, queue: str | None = None) -> list[DeadLetterRow]:
    rows = await store.fetch(
        f"SELECT id, queue, message_type, error, attempts, parked_at FROM {TABLE.name} "
        "WHERE $1 = '' OR queue = $1 ORDER BY parked_at, id",
        queue or "",
    )
    return [
        DeadLetterRow(r["id"], r["queue"], r["message_type"], r["error"], int(r["attempts"]),
                      as_time(r["parked_at"]))
        for r in rows
    ]

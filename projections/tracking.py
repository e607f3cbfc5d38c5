"""How far each projection has read each application's log, and the events it could not apply.

A projection's rows and its position commit in one transaction, so after a
crash the position says exactly which events the rows reflect. Before writing,
a batch claims the position it started from (compare and set, the row locked
on PostgreSQL): if another runner, or a rebuild being swapped in, has moved it
meanwhile, the batch is dropped and read again from the new position. Nothing
is applied twice, whatever runs at the same time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from projections.store import ReadStore, TableSpec, Tx, as_time, as_uuid

TRACKING = TableSpec(
    "projection_tracking",
    (("projection", "text"), ("application_name", "text"), ("notification_id", "int")),
    ("projection", "application_name"),
)
FAILURES = TableSpec(
    "projection_failures",
    (("projection", "text"), ("application_name", "text"), ("notification_id", "int"), ("topic", "text"),
     ("originator_id", "uuid"), ("originator_version", "int"), ("error", "text"), ("failed_at", "ts")),
    ("projection", "application_name", "notification_id"),
)


@dataclass(frozen=True)
class ProjectionFailure:
    """An event a projection could not apply: parked here, skipped, and reported."""

    projection: str
    application_name: str
    notification_id: int
    topic: str
    originator_id: UUID
    originator_version: int
    error: str
    failed_at: datetime


async def positions(store: ReadStore, projection: str) -> dict[str, int]:
    rows = await store.fetch(
        "SELECT application_name, notification_id FROM projection_tracking WHERE projection = $1", projection
    )
    return {r["application_name"]: int(r["notification_id"]) for r in rows}


async def all_positions(store: ReadStore) -> dict[tuple[str, str], int]:
    rows = await store.fetch("SELECT projection, application_name, notification_id FROM projection_tracking")
    return {(r["projection"], r["application_name"]): int(r["notification_id"]) for r in rows}


async def ensure(tx: Tx, projection: str, applications: Iterable[str]) -> None:
    """Start a projection at the beginning of each log it follows, unless it is further on."""
    for application in applications:
        await tx.execute(
            "INSERT INTO projection_tracking (projection, application_name, notification_id) "
            "VALUES ($1, $2, 0) ON CONFLICT (projection, application_name) DO NOTHING",
            projection, application,
        )


async def claim(
    tx: Tx, projection: str, applications: Sequence[str], application: str, expected: int, *, for_update: str
) -> bool:
    """Whether the position in `application` is still `expected`.

    On PostgreSQL this locks every position of the projection until the commit,
    so that its batches from different logs (the order summary follows two)
    never load and write the same row at once. SQLite runs one writer at a time.
    """
    await ensure(tx, projection, applications)
    at = await lock(tx, projection, for_update=for_update)
    return at.get(application) == expected


async def advance(tx: Tx, projection: str, application: str, position: int) -> None:
    await tx.execute(
        "UPDATE projection_tracking SET notification_id = $3 WHERE projection = $1 AND application_name = $2",
        projection, application, position,
    )


async def park(tx: Tx, failures: Sequence[ProjectionFailure]) -> None:
    await tx.executemany(
        FAILURES.upsert_statement(),
        [(f.projection, f.application_name, f.notification_id, f.topic, f.originator_id, f.originator_version,
          f.error, f.failed_at) for f in failures],
    )


async def failures(store: ReadStore, projection: str | None = None) -> list[ProjectionFailure]:
    rows = await store.fetch(
        "SELECT projection, application_name, notification_id, topic, originator_id, originator_version, "
        "error, failed_at FROM projection_failures WHERE $1 = '' OR projection = $1 "
        "ORDER BY failed_at, application_name, notification_id",
        projection or "",
    )
    return [
        ProjectionFailure(
            r["projection"], r["application_name"], int(r["notification_id"]), r["topic"],
            as_uuid(r["originator_id"]), int(r["originator_version"]), r["error"], as_time(r["failed_at"]),
        )
        for r in rows
    ]


async def failure_counts(store: ReadStore) -> dict[str, int]:
    rows = await store.fetch("SELECT projection, COUNT(*) AS n FROM projection_failures GROUP BY projection")
    return {r["projection"]: int(r["n"]) for r in rows}


async def reset(tx: Tx, projection: str, applications: Iterable[str]) -> None:
    """Forget a projection's positions and failures: it starts again from the beginning."""
    await tx.execute("DELETE FROM projection_tracking WHERE projection = $1", projection)
    await tx.execute("DELETE FROM projection_failures WHERE projection = $1", projection)
    await ensure(tx, projection, applications)


async def lock(tx: Tx, projection: str, *, for_update: str) -> dict[str, int]:
    """A projection's positions, locked until the commit on PostgreSQL (in the order `claim` locks them)."""
    rows = await tx.fetch(
        "SELECT application_name, notification_id FROM projection_tracking WHERE projection = $1 "
        "ORDER BY application_name" + for_update,
        projection,
    )
    return {r["application_name"]: int(r["notification_id"]) for r in rows}


async def take_over(tx: Tx, live: str, rebuilt: str) -> None:
    """The rebuilt positions and failures become the live ones, inside the swap's transaction.

    Lock the live positions first (`lock`), so that a batch in flight either
    commits before the swap or finds its position moved and reads again.
    """
    await tx.execute(
        "UPDATE projection_tracking SET notification_id = (SELECT r.notification_id "
        "FROM projection_tracking r WHERE r.projection = $2 "
        "AND r.application_name = projection_tracking.application_name) "
        "WHERE projection = $1",
        live, rebuilt,
    )
    await tx.execute("DELETE FROM projection_tracking WHERE projection = $1", rebuilt)
    await tx.execute("DELETE FROM projection_failures WHERE projection = $1", live)
    await tx.execute("UPDATE projection_failures SET projection = $1 WHERE projection = $2", live, rebuilt)


def now() -> datetime:
    return datetime.now(UTC)

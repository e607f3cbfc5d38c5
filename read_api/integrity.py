"""Whether a stream's hash chain holds, as the API shows it to operators (DESIGN §11).

Each application's event recorder chains its events and checks a stream's chain on
demand (`verify_stream`); the API asks it in a worker thread (`read_api.write_side`) and
shows the answer as a `StreamIntegrity`: `streamIntegrity(streamId)`, and one per stream
of an order on `Order.integrity`, for operators.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable
from uuid import UUID

import strawberry

from commands.base import ContextApplication


class StreamIntegrityReport(Protocol):
    """A stream's hash chain as checked from the event store (see `saga verify`)."""

    @property
    def verified(self) -> bool: ...

    @property
    def length(self) -> int: ...

    @property
    def head_hash(self) -> bytes | None: ...

    @property
    def broken_at(self) -> int | None: ...

    @property
    def problem(self) -> str | None: ...

    @property
    def unchained(self) -> int: ...


@runtime_checkable
class ChainChecked(Protocol):
    """An event recorder that chains its events, so that each stream's chain can be checked."""

    def verify_stream(self, stream_id: UUID) -> StreamIntegrityReport | None: ...


def checked(app: ContextApplication, stream_id: UUID) -> StreamIntegrityReport | None:
    recorder = app.recorder
    return recorder.verify_stream(stream_id) if isinstance(recorder, ChainChecked) else None


def stream_integrity(
    applications: Iterable[ContextApplication], stream_id: UUID
) -> StreamIntegrityReport | None:
    """The stream checked by the application that holds it; None when none does."""
    for app in applications:
        report = checked(app, stream_id)
        if report is not None:
            return report
    return None


def order_integrity(
    applications: Iterable[ContextApplication], order_id: UUID
) -> list[tuple[str, UUID, StreamIntegrityReport | None]]:
    """Each stream the applications keep about the order: its kind, its id and its chain checked."""
    return [(kind, stream_id, checked(app, stream_id))
            for app in applications for kind, stream_id in app.order_streams(order_id).items()]


@strawberry.type(description="Whether a stream's hash chain holds: each stored event still hashes to the "
                             "hash recorded with it, chained to the one before (operators)")
class StreamIntegrity:
    stream_id: strawberry.ID
    kind: str | None = strawberry.field(description=(
        "Listed with an order: order, payment, reservation, shipment, notification or saga"))
    verified: bool = strawberry.field(description=(
        "Every chained event hashes as recorded; events stored before chaining do not count against it"))
    length: int = strawberry.field(description="Events stored in the stream")
    head_hash: str | None = strawberry.field(description=(
        "The last event's hash, 64 hex digits; null when no event of the stream is chained"))
    broken_at: int | None = strawberry.field(description="The first version whose link does not hold")
    problem: str | None = strawberry.field(description=(
        "What differs at brokenAt: hash mismatch, version missing, events swapped, hash without an event, "
        "hash missing"))
    unchained: int = strawberry.field(description="Events stored before chaining existed: the first versions")

    @classmethod
    def of(
        cls, stream_id: UUID, report: StreamIntegrityReport | None, kind: str | None = None
    ) -> StreamIntegrity:
        """A stream the store does not hold has no events, and nothing in it is broken."""
        if report is None:
            return cls(stream_id=strawberry.ID(str(stream_id)), kind=kind, verified=True, length=0,
                       head_hash=None, broken_at=None, problem=None, unchained=0)
        return cls(
            stream_id=strawberry.ID(str(stream_id)), kind=kind, verified=report.verified,
            length=report.length, head_hash=None if report.head_hash is None else report.head_hash.hex(),
            broken_at=report.broken_at, problem=None if report.problem is None else str(report.problem),
            unchained=report.unchained,
        )

"""Which messages each order's customer was sent, and which failed."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.notification import Notification
from projections.facts import Fact
from projections.projection import CannotApplyError, Projection
from projections.read_model import NotificationRow
from projections.store import Index, Row, TableSpec, as_time, as_uuid

SENT, FAILED = get_topic(Notification.Sent), get_topic(Notification.Failed)


def evolve(row: NotificationRow | None, fact: Fact) -> NotificationRow:
    """A notification is one event: sent or failed (a repeat of the request finds the first)."""
    if fact.topic not in (SENT, FAILED):
        raise CannotApplyError(f"the notification log does not read {fact.topic}")
    return NotificationRow(
        id=fact.originator_id, order_id=UUID(fact.data["order_id"]),
        status="SENT" if fact.topic == SENT else "FAILED", channel=fact.data.get("channel"),
        updated_at=fact.timestamp,
    )


class NotificationLog(Projection[NotificationRow]):
    name = "notification_log"
    applications = ("Notifications",)
    topics = frozenset({SENT, FAILED})
    base_table = TableSpec(
        "read_notifications",
        (("id", "uuid"), ("order_id", "uuid"), ("status", "text"), ("channel", "text"), ("updated_at", "ts")),
        ("id",),
        (Index("order_idx", "order_id, updated_at"),),
    )

    def evolve(self, row: NotificationRow | None, fact: Fact) -> NotificationRow:
        return evolve(row, fact)

    def order_of(self, row: NotificationRow) -> UUID | None:
        return row.order_id

    def encode(self, row: NotificationRow) -> tuple[Any, ...]:
        return (row.id, row.order_id, row.status, row.channel, row.updated_at)

    def decode(self, record: Row) -> NotificationRow:
        return NotificationRow(
            id=as_uuid(record["id"]), order_id=as_uuid(record["order_id"]), status=record["status"],
            channel=record["channel"], updated_at=as_time(record["updated_at"]),
        )

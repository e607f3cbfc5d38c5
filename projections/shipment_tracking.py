"""Where each order's parcel is: booked, on its way, delivered, or stopped."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.shipment import Shipment
from projections.facts import Fact
from projections.projection import CannotApplyError, Projection, changed, require
from projections.read_model import ShipmentRow
from projections.store import Index, Row, TableSpec, as_time, as_uuid

CREATED, FAILED = get_topic(Shipment.Created), get_topic(Shipment.Failed)
CANCELLED, DISPATCHED, DELIVERED = (
    get_topic(Shipment.Cancelled), get_topic(Shipment.Dispatched), get_topic(Shipment.Delivered)
)
_FOLLOW_UPS = {DISPATCHED: "SHIPPED", DELIVERED: "DELIVERED"}


def evolve(row: ShipmentRow | None, fact: Fact) -> ShipmentRow:
    """A shipment after one of its events; Failed and Cancelled may open it or follow its booking."""
    at = fact.timestamp
    if fact.topic == CREATED:
        return ShipmentRow(
            id=fact.originator_id, order_id=UUID(fact.data["order_id"]), status="PREPARING",
            tracking_number=fact.data["tracking_number"], carrier=None, created_at=at, updated_at=at,
        )
    if fact.topic in (FAILED, CANCELLED):
        status, reason = "FAILED" if fact.topic == FAILED else "CANCELLED", fact.data["reason"]
        if row is None:
            return ShipmentRow(
                id=fact.originator_id, order_id=UUID(fact.data["order_id"]), status=status,
                tracking_number=None, carrier=None, created_at=at, updated_at=at, failure_reason=reason,
            )
        return changed(row, status=status, updated_at=at, failure_reason=reason)
    if fact.topic in _FOLLOW_UPS:
        return changed(require(row, fact), status=_FOLLOW_UPS[fact.topic], updated_at=at)
    raise CannotApplyError(f"shipment tracking does not read {fact.topic}")


class ShipmentTracking(Projection[ShipmentRow]):
    name = "shipment_tracking"
    applications = ("Shipping",)
    topics = frozenset({CREATED, FAILED, CANCELLED, DISPATCHED, DELIVERED})
    reads_personal_data = False  # a shipment's row holds its carrier and number, never its address
    base_table = TableSpec(
        "read_shipments",
        (("id", "uuid"), ("order_id", "uuid"), ("status", "text"), ("tracking_number", "text"),
         ("carrier", "text"), ("created_at", "ts"), ("updated_at", "ts"), ("failure_reason", "text")),
        ("id",),
        (Index("order_idx", "order_id"),),
    )

    def evolve(self, row: ShipmentRow | None, fact: Fact) -> ShipmentRow:
        return evolve(row, fact)

    def order_of(self, row: ShipmentRow) -> UUID | None:
        return row.order_id

    def encode(self, row: ShipmentRow) -> tuple[Any, ...]:
        return (row.id, row.order_id, row.status, row.tracking_number, row.carrier, row.created_at,
                row.updated_at, row.failure_reason)

    def decode(self, record: Row) -> ShipmentRow:
        return ShipmentRow(
            id=as_uuid(record["id"]), order_id=as_uuid(record["order_id"]), status=record["status"],
            tracking_number=record["tracking_number"], carrier=record["carrier"],
            created_at=as_time(record["created_at"]), updated_at=as_time(record["updated_at"]),
            failure_reason=record["failure_reason"],
        )

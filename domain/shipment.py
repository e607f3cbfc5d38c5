"""The Shipment aggregate (shipping context): one per order.

PREPARING -> SHIPPED -> DELIVERED, or CANCELLED / FAILED. A carrier's refusal
creates the shipment directly FAILED: a shipment that was `Created` has been
booked, so the saga can take `Created` as success without a later surprise.
A cancel that overtakes the create is remembered, and the late create fails.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from domain.base import Aggregate, InvalidStateError, OpensOrFollows, ValidationError, kept_ids
from domain.privacy import ERASED_ADDRESS, PersonalData
from domain.values import Address

CANCELLED_BEFORE_SHIPPING = "order was cancelled before shipping"



class ShipmentStatus(StrEnum):
    PREPARING = "PREPARING"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


class MissingAddressError(ValidationError):
    code = "ADDRESS_REQUIRED"


class ShipmentNotPreparingError(InvalidStateError):
    code = "SHIPMENT_NOT_PREPARING"


class ShipmentNotShippedError(InvalidStateError):
    code = "SHIPMENT_NOT_SHIPPED"


class ShipmentAlreadyShippedError(InvalidStateError):
    code = "SHIPMENT_ALREADY_SHIPPED"


class ShipmentAlreadyDeliveredError(InvalidStateError):
    code = "SHIPMENT_ALREADY_DELIVERED"


class Shipment(Aggregate):
    """The parcel for one order, from booking to the customer's door."""

    class Created(Aggregate.Created):
        personal_data: ClassVar[PersonalData] = PersonalData(
            subject="customer_id", fields={"address": ERASED_ADDRESS},
        )

        order_id: UUID
        address: Address
        tracking_number: str
        customer_id: UUID | None = None  # whose address; shipments booked before it was kept have none

        def apply(self, shipment: Shipment) -> None:
            shipment.status = ShipmentStatus.PREPARING
            shipment.address = self.address
            shipment.tracking_number = self.tracking_number

    class Failed(OpensOrFollows):
        order_id: UUID
        reason: str

        def apply(self, shipment: Shipment) -> None:
            shipment.status = ShipmentStatus.FAILED
            shipment.reason = self.reason

    class Cancelled(OpensOrFollows):
        order_id: UUID
        reason: str

        def apply(self, shipment: Shipment) -> None:
            shipment.status = ShipmentStatus.CANCELLED
            shipment.reason = self.reason

    class Dispatched(Aggregate.Event):
        pass

    class Delivered(Aggregate.Event):
        pass

    @staticmethod
    @kept_ids
    def create_id(order_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/shipments/{order_id}")

    @classmethod
    def create(
        cls, order_id: UUID, address: Address | None, tracking_number: str, customer_id: UUID | None = None
    ) -> Shipment:
        """Record a parcel the carrier booked for the order's address (the customer's, when known)."""
        return cls._open(
            cls.Created, order_id, address=require_address(address),
            tracking_number=tracking_number, customer_id=customer_id,
        )

    @classmethod
    def refused(cls, order_id: UUID, reason: str) -> Shipment:
        """Record that the carrier would not take the parcel: a business outcome."""
        return cls._open(cls.Failed, order_id, reason=reason)

    @classmethod
    def cancelled_before_creation(cls, order_id: UUID, reason: str) -> Shipment:
        """Remember a cancel that overtook the create, so the late create is refused."""
        return cls._open(cls.Cancelled, order_id, reason=reason)

    @classmethod
    def _open(cls, event_class: type[Aggregate.Created], order_id: UUID, **fields: Any) -> Shipment:
        shipment: Shipment = cls._create(
            event_class, id=cls.create_id(order_id), order_id=order_id, **fields
        )
        return shipment

    def __init__(self, order_id: UUID) -> None:
        # The creation event's apply() sets the status and what was booked.
        self.order_id = order_id
        self.status: ShipmentStatus
        self.address: Address | None = None
        self.tracking_number: str | None = None
        self.reason: str | None = None

    @property
    def was_booked(self) -> bool:
        return self.tracking_number is not None

    def refuse_creation(self) -> None:
        """A further create for this order books nothing.

        After a cancel that came first it is recorded as failed, so whoever
        asked learns the outcome; otherwise it changes nothing.
        """
        if self.status is ShipmentStatus.CANCELLED and not self.was_booked:
            self._follow(self.Failed, reason=CANCELLED_BEFORE_SHIPPING)

    def cancel(self, reason: str) -> None:
        """Stop a parcel that has not left; cancelling twice, or a failed one, changes nothing."""
        if self.status is ShipmentStatus.SHIPPED:
            raise ShipmentAlreadyShippedError(f"shipment {self.tracking_number} has left")
        if self.status is ShipmentStatus.DELIVERED:
            raise ShipmentAlreadyDeliveredError(f"shipment {self.tracking_number} was delivered")
        if self.status is ShipmentStatus.PREPARING:
            self._follow(self.Cancelled, reason=reason)

    def dispatch(self) -> None:
        if self.status is not ShipmentStatus.PREPARING:
            raise ShipmentNotPreparingError(
                f"only a PREPARING shipment can be dispatched; this one is {self.status}"
            )
        self._dispatched()

    def deliver(self) -> None:
        if self.status is not ShipmentStatus.SHIPPED:
            raise ShipmentNotShippedError(
                f"only a SHIPPED shipment can be delivered; this one is {self.status}"
            )
        self._delivered()

    @event(Dispatched)
    def _dispatched(self) -> None:
        self.status = ShipmentStatus.SHIPPED

    @event(Delivered)
    def _delivered(self) -> None:
        self.status = ShipmentStatus.DELIVERED

    def _follow(self, event_class: type[OpensOrFollows], **fields: Any) -> None:
        self.trigger_event(
            event_class,
            order_id=self.order_id,
            originator_topic=OpensOrFollows.topic_of(self),
            **fields,
        )


def require_address(address: Address | None) -> Address:
    if address is None:
        raise MissingAddressError("a shipment needs the order's shipping address", field="address")
    return address

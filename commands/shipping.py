"""The shipping context: booking one parcel per order, and following it to the door.

The carrier is called from inside `decide`, only when the order has no
shipment yet, with the order id as its idempotency key: a repeated or retried
create books nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated
from uuid import UUID

from pydantic import Field

from commands.base import ContextApplication
from commands.command import Command, handles
from commands.simulation import Booked, Carrier
from domain.base import NotFoundError
from domain.shipment import Shipment, require_address
from domain.values import Address


class CreateShipment(Command):
    order_id: UUID
    address: Address
    customer_id: UUID | None = None  # whose address: its key encrypts it in the shipment's events


class CancelShipment(Command):
    order_id: UUID
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class DispatchShipment(Command):
    order_id: UUID


class DeliverShipment(Command):
    order_id: UUID


class ShipmentNotFoundError(NotFoundError):
    code = "SHIPMENT_NOT_FOUND"


class Shipping(ContextApplication):
    """Books each order's parcel once and records where it has got to."""

    name = "Shipping"

    def __init__(self, env: Mapping[str, str] | None = None, *, carrier: Carrier) -> None:
        super().__init__(env)
        self.carrier = carrier

    @handles(CreateShipment)
    def create_shipment(self, command: CreateShipment) -> bool:
        """Book the parcel, or record the refusal; after a cancel, record the create as failed."""

        def decide() -> list[Shipment]:
            shipment = self.find(Shipment.create_id(command.order_id), Shipment)
            if shipment is None:
                return [self._book(command.order_id, command.address, command.customer_id)]
            shipment.refuse_creation()
            return [shipment]

        return self.execute(command, decide, correlation_id=command.order_id)

    @handles(CancelShipment)
    def cancel_shipment(self, command: CancelShipment) -> bool:
        """Cancel the parcel; before any create, remember the cancel so a late create fails."""

        def decide() -> list[Shipment]:
            shipment = self.find(Shipment.create_id(command.order_id), Shipment)
            if shipment is None:
                return [Shipment.cancelled_before_creation(command.order_id, command.reason)]
            shipment.cancel(command.reason)
            return [shipment]

        return self.execute(command, decide, correlation_id=command.order_id)

    @handles(DispatchShipment)
    def dispatch_shipment(self, command: DispatchShipment) -> bool:
        return self._on_shipment(command, lambda shipment: shipment.dispatch())

    @handles(DeliverShipment)
    def deliver_shipment(self, command: DeliverShipment) -> bool:
        return self._on_shipment(command, lambda shipment: shipment.deliver())

    def order_streams(self, order_id: UUID) -> dict[str, UUID]:
        return {"shipment": Shipment.create_id(order_id)}

    def get_shipment(self, order_id: UUID, *, version: int | None = None) -> Shipment:
        shipment = self.find(Shipment.create_id(order_id), Shipment, version=version)
        if shipment is None:
            raise ShipmentNotFoundError(f"no shipment for order {order_id}", field="order_id")
        return shipment

    def _book(self, order_id: UUID, address: Address | None, customer_id: UUID | None) -> Shipment:
        # Checked before the carrier hears of it, however the command was built.
        result = self.carrier.book(order_id=order_id, address=require_address(address))
        if isinstance(result, Booked):
            return Shipment.create(order_id, address, result.tracking_number, customer_id)
        return Shipment.refused(order_id, result.reason)

    def _on_shipment(
        self, command: DispatchShipment | DeliverShipment, change: Callable[[Shipment], None]
    ) -> bool:
        def decide() -> list[Shipment]:
            shipment = self.get_shipment(command.order_id)
            change(shipment)
            return [shipment]

        return self.execute(command, decide, correlation_id=command.order_id)

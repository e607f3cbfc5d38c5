"""The Order aggregate (orders context)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event
from pydantic import BaseModel, ConfigDict, Field

from domain.base import Aggregate, InvalidStateError, ValidationError, kept_ids
from domain.privacy import ERASED_ADDRESS, PersonalData
from domain.values import Address, Money

MAX_LINES = 100
MAX_QUANTITY = 1000


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: UUID
    quantity: int = Field(ge=1, le=MAX_QUANTITY)
    unit_price: Money

    @property
    def subtotal(self) -> Money:
        return self.unit_price * self.quantity


class OrderAlreadyCompletedError(InvalidStateError):
    code = "ORDER_ALREADY_COMPLETED"


class OrderAlreadyCancelledError(InvalidStateError):
    code = "ORDER_ALREADY_CANCELLED"


class Order(Aggregate):
    """A customer's order. Prices are fixed when it is placed; its saga moves it to an end."""

    class Placed(Aggregate.Created):
        personal_data: ClassVar[PersonalData] = PersonalData(
            subject="customer_id", fields={"shipping_address": ERASED_ADDRESS},
        )

        placement_id: UUID
        customer_id: UUID
        lines: tuple[OrderLine, ...]
        total: Money
        shipping_address: Address

    class Completed(Aggregate.Event):
        pass

    class CancellationRequested(Aggregate.Event):
        reason: str

    class Cancelled(Aggregate.Event):
        reason: str

    class PersonalDataErased(Aggregate.Event):
        """The customer was forgotten: the order's personal fields read as erased from now on."""

        requested_by: str

    @staticmethod
    @kept_ids
    def create_id(placement_id: UUID) -> UUID:
        """One order per placement request, however often the request is repeated."""
        return uuid5(NAMESPACE_URL, f"/orders/{placement_id}")

    @classmethod
    def place(
        cls,
        placement_id: UUID,
        customer_id: UUID,
        lines: list[OrderLine],
        shipping_address: Address,
    ) -> Order:
        check_lines(lines)
        total = sum((line.subtotal for line in lines[1:]), lines[0].subtotal)
        return cls(
            placement_id=placement_id,
            customer_id=customer_id,
            lines=tuple(lines),
            total=total,
            shipping_address=shipping_address,
        )

    @event(Placed)
    def __init__(
        self,
        placement_id: UUID,
        customer_id: UUID,
        lines: tuple[OrderLine, ...],
        total: Money,
        shipping_address: Address,
    ) -> None:
        self.placement_id = placement_id
        self.customer_id = customer_id
        self.lines = lines
        self.total = total
        self.shipping_address = shipping_address
        self.status = OrderStatus.PENDING
        self.cancellation_reason: str | None = None
        self.cancellation_requested = False
        self.personal_data_erased = False

    @property
    def is_finished(self) -> bool:
        return self.status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED)

    def request_cancellation(self, reason: str) -> None:
        """The customer asks to cancel; the saga undoes what was done, then cancels."""
        self._refuse_if_completed("cancel")
        if self.cancellation_requested or self.status is OrderStatus.CANCELLED:
            return
        self._cancellation_requested(reason=reason)

    def complete(self) -> None:
        if self.status is OrderStatus.COMPLETED:
            return
        if self.status is OrderStatus.CANCELLED:
            raise OrderAlreadyCancelledError(f"order {self.id} is cancelled; it cannot complete")
        self._completed()

    def cancel(self, reason: str) -> None:
        self._refuse_if_completed("cancel")
        if self.status is OrderStatus.CANCELLED:
            return
        self._cancelled(reason=reason)

    def erase_personal_data(self, requested_by: str) -> None:
        """Forget the customer's personal data in this order (the key that sealed it goes too)."""
        if not self.personal_data_erased:
            self._personal_data_erased(requested_by=requested_by)

    @event(PersonalDataErased)
    def _personal_data_erased(self, requested_by: str) -> None:
        self.personal_data_erased = True
        self.shipping_address = Address(**ERASED_ADDRESS)

    def _refuse_if_completed(self, action: str) -> None:
        if self.status is OrderStatus.COMPLETED:
            raise OrderAlreadyCompletedError(f"order {self.id} is completed; cannot {action} it")

    @event(CancellationRequested)
    def _cancellation_requested(self, reason: str) -> None:
        self.cancellation_requested = True
        self.cancellation_reason = reason

    @event(Completed)
    def _completed(self) -> None:
        self.status = OrderStatus.COMPLETED

    @event(Cancelled)
    def _cancelled(self, reason: str) -> None:
        self.status = OrderStatus.CANCELLED
        self.cancellation_reason = reason


def check_lines(lines: list[OrderLine]) -> None:
    if not lines:
        raise ValidationError("an order needs at least one item", field="items")
    if len(lines) > MAX_LINES:
        raise ValidationError(f"an order has at most {MAX_LINES} items", field="items")
    seen: set[UUID] = set()
    for index, line in enumerate(lines):
        if line.product_id in seen:
            raise ValidationError(
                "each product may appear once; add up the quantities",
                field=f"items[{index}].product_id",
            )
        seen.add(line.product_id)
    currencies = {line.unit_price.currency for line in lines}
    if len(currencies) > 1:
        raise ValidationError("all items must be priced in one currency", field="items")

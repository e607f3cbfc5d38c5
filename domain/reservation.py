"""The Reservation aggregate (inventory context): what one order holds of the stock.

It lets a release or a commit name only the order, and it remembers a release
that overtook its reservation, so that the late reservation is refused instead
of holding stock that nobody will ever release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event
from pydantic import BaseModel, ConfigDict, Field

from domain.base import Aggregate, InvalidStateError, ValidationError, kept_ids
from domain.stock import Stock

MAX_LINES = 100
MAX_LINE_QUANTITY = 1000


class StockLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: UUID
    quantity: int = Field(ge=1, le=MAX_LINE_QUANTITY)


class ReservationStatus(StrEnum):
    OPEN = "OPEN"
    RESERVED = "RESERVED"
    REJECTED = "REJECTED"
    RELEASED = "RELEASED"
    RELEASED_BEFORE_RESERVED = "RELEASED_BEFORE_RESERVED"
    COMMITTED = "COMMITTED"


class RejectionCode(StrEnum):
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    ALREADY_RELEASED = "ALREADY_RELEASED"


class ReservationNotHeldError(InvalidStateError):
    """The order holds no stock to commit (it was rejected or released)."""

    code = "RESERVATION_NOT_HELD"


class ReservationCommittedError(InvalidStateError):
    """The order's units have left the warehouse; they cannot be released."""

    code = "RESERVATION_COMMITTED"


class Reservation(Aggregate):
    """The stock one order holds, from its reservation to its release or sale."""

    class Opened(Aggregate.Created):
        order_id: UUID

    class Reserved(Aggregate.Event):
        order_id: UUID
        lines: tuple[StockLine, ...]

    class Rejected(Aggregate.Event):
        order_id: UUID
        code: RejectionCode
        reason: str
        line: int | None = None
        product_id: UUID | None = None
        requested: int | None = None
        available: int | None = None

    class Released(Aggregate.Event):
        order_id: UUID

    class ReleasedBeforeReserved(Aggregate.Event):
        order_id: UUID

    class Committed(Aggregate.Event):
        order_id: UUID

    @staticmethod
    @kept_ids
    def create_id(order_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/reservations/{order_id}")

    @event(Opened)
    def __init__(self, order_id: UUID) -> None:
        self.order_id = order_id
        self.status = ReservationStatus.OPEN
        self.lines: tuple[StockLine, ...] = ()
        self.rejection: str | None = None

    @property
    def product_ids(self) -> list[UUID]:
        return [line.product_id for line in self.lines]

    @property
    def awaits_stock(self) -> bool:
        """Whether a reservation request would take stock (rather than be refused or ignored)."""
        return self.status is ReservationStatus.OPEN

    def reserve(self, lines: Sequence[StockLine], stocks: Mapping[UUID, Stock]) -> None:
        """Reserve every line from its Stock, or none of them and record why.

        A request after the order was released is refused; any other repeat changes nothing.
        """
        if self.status is ReservationStatus.RELEASED_BEFORE_RESERVED:
            self._rejected(
                order_id=self.order_id,
                code=RejectionCode.ALREADY_RELEASED,
                reason="the order's stock was released before this reservation arrived",
            )
            return
        if not self.awaits_stock:
            return
        check_lines(lines)
        for index, line in enumerate(lines):
            stock = stocks[line.product_id]
            if not stock.can_reserve(self.order_id, line.quantity):
                self._reject_short(index, line, stock)
                return
        for line in lines:
            stocks[line.product_id].reserve(self.order_id, line.quantity)
        self._reserved(order_id=self.order_id, lines=tuple(lines))

    def release(self, stocks: Mapping[UUID, Stock]) -> None:
        """Give the order's units back; a release that comes first is remembered."""
        if self.status is ReservationStatus.COMMITTED:
            raise ReservationCommittedError(
                f"the stock of order {self.order_id} is sold; it cannot be released",
                field="order_id",
            )
        if self.status is ReservationStatus.OPEN:
            self._released_before_reserved(order_id=self.order_id)
        elif self.status is ReservationStatus.RESERVED:
            for product_id in self.product_ids:
                stocks[product_id].release(self.order_id)
            self._released(order_id=self.order_id)

    def commit(self, stocks: Mapping[UUID, Stock]) -> None:
        """The order has shipped: its reserved units are sold."""
        if self.status is ReservationStatus.COMMITTED:
            return
        if self.status is not ReservationStatus.RESERVED:
            raise ReservationNotHeldError(
                f"order {self.order_id} holds no stock to commit ({self.status})",
                field="order_id",
            )
        for product_id in self.product_ids:
            stocks[product_id].sell(self.order_id)
        self._committed(order_id=self.order_id)

    def _reject_short(self, index: int, line: StockLine, stock: Stock) -> None:
        self._rejected(
            order_id=self.order_id,
            code=RejectionCode.INSUFFICIENT_STOCK,
            reason=f"{stock.name}: {line.quantity} requested, {stock.available} available",
            line=index,
            product_id=line.product_id,
            requested=line.quantity,
            available=stock.available,
        )

    @event(Reserved)
    def _reserved(self, order_id: UUID, lines: tuple[StockLine, ...]) -> None:
        self.status = ReservationStatus.RESERVED
        self.lines = lines

    @event(Rejected)
    def _rejected(
        self,
        order_id: UUID,
        code: RejectionCode,
        reason: str,
        line: int | None = None,
        product_id: UUID | None = None,
        requested: int | None = None,
        available: int | None = None,
    ) -> None:
        self.status = ReservationStatus.REJECTED
        self.rejection = reason

    @event(Released)
    def _released(self, order_id: UUID) -> None:
        self.status = ReservationStatus.RELEASED

    @event(ReleasedBeforeReserved)
    def _released_before_reserved(self, order_id: UUID) -> None:
        self.status = ReservationStatus.RELEASED_BEFORE_RESERVED

    @event(Committed)
    def _committed(self, order_id: UUID) -> None:
        self.status = ReservationStatus.COMMITTED


def check_lines(lines: Sequence[StockLine]) -> None:
    if not 1 <= len(lines) <= MAX_LINES:
        raise ValidationError(f"reserve between 1 and {MAX_LINES} lines", field="lines")
    seen: set[UUID] = set()
    for index, line in enumerate(lines):
        if line.product_id in seen:
            raise ValidationError(
                "each product may appear once; add up the quantities",
                field=f"lines[{index}].product_id",
            )
        seen.add(line.product_id)

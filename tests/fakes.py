"""Hand-written fakes of the outside world, shared by the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import Tracking

from commands.contract.messages import Envelope, ProductListed
from commands.orders import Orders
from commands.simulation import (
    Accepted,
    Approved,
    Booked,
    BookingResult,
    ChargeResult,
    Refused,
    SendResult,
)
from domain.notification import Channel
from domain.values import Address, Money
from infra.messaging.bus import DeadLetter, RunLoop, Subscription

MOUSE = UUID("550e8400-e29b-41d4-a716-446655440002")
ADDRESS = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zip_code": "62701",
           "country": "US"}


def hear_listing(orders: Orders, product_id: UUID, name: str, price: str) -> bool:
    """Orders hears that Inventory listed a product, as its catalogue consumer delivers it.

    The listing's origin in Inventory's log is made of the product id, so each product is
    heard at a position of its own, and hearing one twice is a redelivery.
    """
    fact = ProductListed(product_id=product_id, name=name, price=Money.of(price))
    return orders.hear_listing(fact, Tracking("Inventory", product_id.int % 2**62 + 1))


def listed_mouse(orders: Orders) -> Orders:
    """Orders, having heard Inventory list the wireless mouse at 49.99 (and nothing else)."""
    hear_listing(orders, MOUSE, "Wireless Mouse", "49.99")
    return orders


class FakeGateway:
    """Approves every charge unless told to decline. Like a real gateway, it moves money
    once per idempotency key and answers a repeated key as it did the first time."""

    def __init__(self, decline: str | None = None, *, delay: float = 0.0) -> None:
        self.decline = decline
        self.delay = delay
        self.charges: dict[UUID, ChargeResult] = {}
        self.taken: list[Money] = []
        self.refunds: dict[UUID, tuple[str, Money]] = {}
        self.charge_calls = 0
        self.rendezvous: threading.Barrier | None = None
        self._lock = threading.Lock()

    def charge(self, *, order_id: UUID, customer_id: UUID, amount: Money) -> ChargeResult:
        self._meet()
        time.sleep(self.delay)
        with self._lock:
            self.charge_calls += 1
            if order_id in self.charges:
                return self.charges[order_id]
            result: ChargeResult = Approved(f"txn_{order_id.hex[:8]}")
            if self.decline is not None:
                result = Refused(self.decline)
            else:
                self.taken.append(amount)
            self.charges[order_id] = result
            return result

    def refund(self, *, transaction_id: str, amount: Money, key: UUID) -> str:
        self._meet()
        with self._lock:
            self.refunds.setdefault(key, (f"rf_{key.hex[:8]}", amount))
            return self.refunds[key][0]

    @property
    def returned(self) -> list[Money]:
        return [amount for _, amount in self.refunds.values()]

    def _meet(self) -> None:
        if self.rendezvous is not None:
            self.rendezvous.wait(timeout=5)


class FakeCarrier:
    """Books every parcel unless told to refuse; remembers each booking it was asked for."""

    def __init__(self, refuse: str | None = None, *, delay: float = 0.0) -> None:
        self.refuse = refuse
        self.delay = delay
        self.bookings: list[tuple[UUID, Address]] = []

    def book(self, *, order_id: UUID, address: Address) -> BookingResult:
        time.sleep(self.delay)
        self.bookings.append((order_id, address))
        if self.refuse is not None:
            return Refused(self.refuse)
        return Booked(f"TRK{order_id.hex[:10].upper()}")


class FakeNotifier:
    """Accepts every message unless told to fail; keeps what it delivered."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.outbox: list[tuple[UUID, Channel, str]] = []

    def send(
        self, *, message_id: UUID, customer_id: UUID, channel: Channel, subject: str, body: str
    ) -> SendResult:
        if self.fail is not None:
            return Refused(self.fail)
        self.outbox.append((customer_id, channel, subject))
        return Accepted()


class RecordingBus:
    """Keeps what is published; can be told to fail the next publishes, as a broker that is down."""

    def __init__(self) -> None:
        self.published: list[tuple[str, Envelope]] = []
        self.failures_left = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, exchange: str, envelopes: Sequence[Envelope]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("broker unreachable")
        self.published += [(exchange, envelope) for envelope in envelopes]

    async def subscribe(self, subscription: Subscription, *, run: RunLoop | None = None) -> None:
        raise NotImplementedError("a recording bus delivers nothing")

    async def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        return []

    async def redrive(self, dead_letter_id: str) -> bool:
        return False

    async def healthy(self) -> bool:
        return self.failures_left == 0

    async def declare_topology(self) -> list[str]:
        return []

    async def consumer_counts(self) -> dict[str, int] | None:
        return None

    def types(self) -> list[str]:
        return [envelope.type for _, envelope in self.published]

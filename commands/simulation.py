"""The outside world the contexts talk to (payment gateway, carrier, notifier) and its simulation.

Each port is a Protocol, so tests pass hand-written fakes and the bootstrap wires
the simulated implementations from PAYMENT_FAILURE_RATE, SHIPPING_FAILURE_RATE,
NOTIFICATION_FAILURE_RATE and FAILURE_SEED. A simulated answer depends only on
the seed, what is being decided and its key, never on call order: a redelivered
or retried command gets the same answer, and a seeded run can be replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from domain.notification import Channel
from domain.values import Address, Money

# Drawn once per process: without FAILURE_SEED, runs differ but one process agrees with itself.
_PROCESS_SEED = random.SystemRandom().getrandbits(64)

DECLINE_REASONS = ("insufficient funds", "card expired", "suspected fraud")
REFUSAL_REASONS = ("no carrier capacity", "address not serviceable")
SEND_FAILURE_REASONS = ("mailbox unavailable", "provider timed out")


@dataclass(frozen=True)
class Approved:
    transaction_id: str


@dataclass(frozen=True)
class Booked:
    tracking_number: str


@dataclass(frozen=True)
class Accepted:
    pass


@dataclass(frozen=True)
class Refused:
    """The outside world said no, for a reason worth showing to a person."""

    reason: str


ChargeResult = Approved | Refused
BookingResult = Booked | Refused
SendResult = Accepted | Refused


class PaymentGateway(Protocol):
    def charge(self, *, order_id: UUID, customer_id: UUID, amount: Money) -> ChargeResult:
        """Take the money. `order_id` is the idempotency key: a repeat takes nothing more
        and gives the first answer."""
        ...

    def refund(self, *, transaction_id: str, amount: Money, key: UUID) -> str:
        """Give money back and return the refund's reference. `key` is the idempotency
        key: a repeat gives nothing more back and returns the first reference."""
        ...


class Carrier(Protocol):
    def book(self, *, order_id: UUID, address: Address) -> BookingResult:
        """Book the collection of an order's parcel; `order_id` is the idempotency key."""
        ...


class Notifier(Protocol):
    def send(
        self, *, message_id: UUID, customer_id: UUID, channel: Channel, subject: str, body: str
    ) -> SendResult:
        """Deliver one message; `message_id` is the idempotency key."""
        ...


class FailureSimulator:
    """Decides, reproducibly, whether a simulated call fails."""

    def __init__(self, rate: float, seed: int | None = None) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"a failure rate is between 0 and 1, got {rate}")
        self.rate = rate
        self.seed = _PROCESS_SEED if seed is None else seed

    def rng(self, purpose: str, key: object) -> random.Random:
        # Seeding with a string hashes it with SHA-512: stable across processes and platforms.
        return random.Random(f"{self.seed}:{purpose}:{key}")

    def draw(self, purpose: str, key: object) -> tuple[bool, random.Random]:
        """Whether this call fails, and a generator for its details; both fixed by the key."""
        rng = self.rng(purpose, key)
        return rng.random() < self.rate, rng

    def fails(self, purpose: str, key: object) -> bool:
        return self.draw(purpose, key)[0]


class SimulatedGateway:
    def __init__(self, simulator: FailureSimulator) -> None:
        self.simulator = simulator

    def charge(self, *, order_id: UUID, customer_id: UUID, amount: Money) -> ChargeResult:
        failed, rng = self.simulator.draw("charge", order_id)
        if failed:
            return Refused(rng.choice(DECLINE_REASONS))
        return Approved(f"txn_{rng.getrandbits(64):016x}")

    def refund(self, *, transaction_id: str, amount: Money, key: UUID) -> str:
        # Refunds are compensations: the simulation never fails them.
        return f"rf_{self.simulator.rng('refund', key).getrandbits(64):016x}"


class SimulatedCarrier:
    def __init__(self, simulator: FailureSimulator) -> None:
        self.simulator = simulator

    def book(self, *, order_id: UUID, address: Address) -> BookingResult:
        failed, rng = self.simulator.draw("book", order_id)
        if failed:
            return Refused(rng.choice(REFUSAL_REASONS))
        return Booked(f"TRK{rng.randrange(10**12):012d}")


class SimulatedNotifier:
    def __init__(self, simulator: FailureSimulator) -> None:
        self.simulator = simulator

    def send(
        self, *, message_id: UUID, customer_id: UUID, channel: Channel, subject: str, body: str
    ) -> SendResult:
        failed, rng = self.simulator.draw("send", message_id)
        if failed:
            return Refused(rng.choice(SEND_FAILURE_REASONS))
        return Accepted()

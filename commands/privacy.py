"""Forgetting a customer: cut short what is in flight, mark every order erased, delete the key.

Personal fields are stored sealed with the customer's own key (the event store
does it, from each event class's declaration: `domain.privacy`). Forgetting the
customer takes three steps, each safe to repeat, so a forgetting that stopped
half-way is finished by asking again:

1. Every order of theirs still in flight is asked to cancel, and is waited for:
   the saga undoes what was done (refund, release, cancel), or completes it when
   it is too late to cancel. An order that does not end in time stops the
   forgetting (`OrdersInFlightError`), before anything is erased.
2. Every order is marked erased and the forgetting recorded (who asked, and
   when) in one transaction of the Orders context: the read models erase the
   order's address when they read the mark.
3. The customer's key is deleted: from then on every reader of the stored
   events, and every read model rebuilt later, sees the fields as `[erased]`.
   Amounts, items, statuses and the saga's history stay, so the books balance.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from commands.orders import ForgetCustomer, Orders, RequestCancellation
from domain.base import DomainError

CANCELLATION_REASON = "the customer asked to be forgotten"


class ForgetsKeys(Protocol):
    """The customers' data keys (`infra.eventstore.privacy.PersonalDataKeys`)."""

    def forget(self, subject: UUID) -> bool: ...


class OrdersInFlightError(DomainError):
    code = "ORDERS_IN_FLIGHT"


@dataclass(frozen=True)
class Forgotten:
    """What forgetting a customer did."""

    customer_id: UUID
    orders: tuple[UUID, ...]
    """Every order of the customer, now erased."""
    cancelled: tuple[UUID, ...]
    """The orders that were in flight and were asked to cancel first."""
    key_deleted: bool
    """Whether a key was deleted now (False when it was gone already, or nothing was ever sealed)."""
    forgotten_before: bool


async def forget_customer(
    orders: Orders, keys: ForgetsKeys | None, customer_id: UUID, requested_by: str,
    *, within: float = 60.0, poll: float = 0.2,
) -> Forgotten:
    """Forget the customer; `within`: how long to wait for their orders in flight to end."""
    forgotten_before = await asyncio.to_thread(orders.was_forgotten, customer_id)
    placed = await asyncio.to_thread(orders.orders_of, customer_id)
    in_flight = await asyncio.to_thread(_unfinished, orders, placed)
    for order_id in in_flight:
        cancel = RequestCancellation(order_id=order_id, reason=CANCELLATION_REASON)
        # An order that completed meanwhile refuses: nothing to cancel, and it is no longer in flight.
        with contextlib.suppress(DomainError):
            await asyncio.to_thread(orders.request_cancellation, cancel)
    deadline = time.monotonic() + within
    while still := await asyncio.to_thread(_unfinished, orders, in_flight):
        if time.monotonic() >= deadline:
            raise OrdersInFlightError(
                f"{len(still)} order(s) of customer {customer_id} did not end within {within:g} s "
                f"({', '.join(map(str, still))}); nothing was erased: are the roles running?",
                field="customer_id",
            )
        await asyncio.sleep(poll)
    await asyncio.to_thread(
        orders.forget_customer, ForgetCustomer(customer_id=customer_id, requested_by=requested_by)
    )
    deleted = await asyncio.to_thread(keys.forget, customer_id) if keys is not None else False
    return Forgotten(customer_id, tuple(placed), tuple(in_flight), deleted, forgotten_before)


def _unfinished(orders: Orders, order_ids: list[UUID]) -> list[UUID]:
    return [order_id for order_id in order_ids if not orders.get_order(order_id).is_finished]

"""What travels from sealing an event's personal fields to the transaction that stores it.

The mapper seals with a person's key (`privacy.PersonalDataKeys.conceal`) and hands
the recorder a `SealedStoredEvent` naming the key; the recorder's transaction inserts
the keys made for it (`new_keys`), which fails if a rival kept one first, checks that
the keys it had at hand are still the ones kept (`kept_keys`), which fails if one was
forgotten or replaced meanwhile, and, once the transaction ends, tells the keeper
whether it committed (`settling_seals`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar
from uuid import UUID

from eventsourcing.persistence import StoredEvent

T = TypeVar("T")


class Seal(NamedTuple):
    """The key an event's personal fields were sealed with, for the transaction that stores the event."""

    subject: UUID
    stored: bytes
    new: bool
    """Made for this save: its transaction inserts it, and fails if a rival kept a key first."""


@dataclass(frozen=True)
class SealedStoredEvent(StoredEvent):
    """A stored event with personal fields sealed, and the key they were sealed with."""

    seal: Seal


class SealKeeper(Protocol):
    def committed(self, seals: Sequence[Seal]) -> None: ...

    def failed(self, seals: Sequence[Seal]) -> None: ...


def seals_of(stored_events: Sequence[StoredEvent]) -> list[Seal]:
    """The keys the personal fields of these events were sealed with (`privacy.SealedStoredEvent`)."""
    return [e.seal for e in stored_events if isinstance(e, SealedStoredEvent)]


def new_keys(stored_events: Sequence[StoredEvent]) -> dict[UUID, bytes]:
    """The keys made for these events, by person: for their transaction to insert."""
    return {seal.subject: seal.stored for seal in seals_of(stored_events) if seal.new}


def kept_keys(stored_events: Sequence[StoredEvent]) -> dict[UUID, bytes]:
    """The keys at hand these events were sealed with, by person: for their transaction to check."""
    return {seal.subject: seal.stored for seal in seals_of(stored_events) if not seal.new}


def settling_seals(
    personal: SealKeeper | None, stored_events: Sequence[StoredEvent], insert: Callable[[], T]
) -> T:
    """Run the insert; then tell the keeper whether the new keys it sealed with were committed."""
    seals = seals_of(stored_events) if personal is not None else []
    try:
        returning = insert()
    except BaseException:
        if seals and personal is not None:
            personal.failed(seals)
        raise
    if seals and personal is not None:
        personal.committed(seals)
    return returning

"""The event store's keeper of personal data, as the applications see it: one port, two warm-ups.

Infra attaches the customers' data keys to each application's mapper
(`mapper.personal`, an `infra.eventstore.privacy.PersonalDataKeys`): it seals
the fields an event class declares personal as they are stored and opens them
as they are read (`commands.following.stored_state`). A save, and a reader of a
window, first have every customer's key at hand in one round trip, rather than
one per customer as each event is sealed or opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Mapper

from domain.base import Aggregate
from domain.privacy import subject_of


class PersonalDataKeys(Protocol):
    """What seals and opens the personal fields of events (`infra.eventstore.privacy.PersonalDataKeys`)."""

    def reveal(self, topic: str, stream_id: UUID | str, state: dict[str, Any]) -> dict[str, Any]: ...

    def declares(self, topic: str) -> bool: ...

    def may_hold_sealed(self, data: bytes) -> bool: ...

    def load_for(self, stored: Iterable[tuple[str, dict[str, Any]]]) -> None: ...

    def prepare(self, subjects: Iterable[UUID], *, asks_first: bool = True) -> None: ...


def keys_of(mapper: Mapper[UUID]) -> PersonalDataKeys | None:
    """The keys the mapper seals and opens personal fields with; None when it keeps them in clear."""
    keys: PersonalDataKeys | None = getattr(mapper, "personal", None)
    return keys


def have_keys_to_seal(
    mapper: Mapper[UUID], aggregates: Sequence[Aggregate], *, asks_first: bool = True
) -> None:
    """Before a save: the keys of every customer whose data its pending events carry, created if new.

    Where customers' data enters (`asks_first` false), a customer with no key at hand gets
    a new one without the key table being asked first: most are new there.
    """
    keys = keys_of(mapper)
    if keys is None:
        return
    subjects = {subject_of(event) for aggregate in aggregates for event in aggregate.pending_events}
    subjects.discard(None)
    if subjects:
        keys.prepare((s for s in subjects if s is not None), asks_first=asks_first)

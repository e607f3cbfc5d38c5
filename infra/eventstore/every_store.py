"""The customers' data keys of every event store, as one.

With each context on a database of its own, a customer's key may be kept in
several key tables: forgetting them must delete it from each, and whether the
system still knows them is whether any store does.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from infra.eventstore.privacy import PersonalDataKeys


class EveryStoresKeys:
    """The keepers of every event store's key table, as one: forgetting a person forgets them in each."""

    def __init__(self, keepers: Sequence[PersonalDataKeys]) -> None:
        self.keepers = list({id(keeper): keeper for keeper in keepers}.values())

    def forget(self, subject: UUID) -> bool:
        """Delete the person's key in every store; whether any store had one."""
        return any([keeper.forget(subject) for keeper in self.keepers])

    def knows(self, subject: UUID) -> bool:
        return any(keeper.knows(subject) for keeper in self.keepers)

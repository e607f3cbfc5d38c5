"""Which projections this projector copy applies: one copy at a time leads each.

Several projector processes may follow the same logs into one read store. Each
projection's batches would then be read and folded by all of them, only for
all but one to find its position moved at the commit (`tracking.claim`): work
thrown away, and a contention that grows with the copies. So each projection
has a leader, elected by whatever `Leads` infra hands the projector (an advisory
lock on the read store's database): a copy applies the projections it leads,
asks again before each batch, and stops applying a projection as soon as it
finds its lead gone. A standby that then wins it goes on from the position the
read store recorded. The claim stays the guard of last resort: a batch already
in flight when the lead went cannot be applied twice.

The parked-message copier has a lead of its own (`DEAD_LETTERS`); what the
projector announces to the API's subscribers (`changes.ChangeHub`) is only
ever what this copy applied: a process that leads nothing sees the others'
changes by polling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

DEAD_LETTERS = "dead_letters"
"""The lead of copying the bus's parked messages into the read store."""


class Lead(Protocol):
    async def acquire(self) -> bool:
        """True while this copy leads: it tries to become leader when it is not."""
        ...

    async def release(self) -> None: ...


Leads = Callable[[str], Lead]
"""The lead of one role of the projector (a projection's name, or `DEAD_LETTERS`)."""


class Always:
    """The only copy: it leads everything."""

    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class Leading:
    """The leads of one projector copy, and which of them it held when it last asked."""

    def __init__(self, names: Iterable[str], leads: Leads | None = None) -> None:
        self._leads: dict[str, Lead] = {name: leads(name) if leads else Always() for name in names}
        self._held: set[str] = set()

    @property
    def held(self) -> frozenset[str]:
        """What this copy led when it last asked (for health reports)."""
        return frozenset(self._held)

    async def leads(self, name: str) -> bool:
        """Whether this copy leads `name` now, trying for the lead when it does not."""
        if await self._leads[name].acquire():
            self._held.add(name)
            return True
        self._held.discard(name)
        return False

    async def release(self) -> None:
        """Give up every lead, for a standby to take over at once."""
        self._held.clear()
        for lead in self._leads.values():
            await lead.release()

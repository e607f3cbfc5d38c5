"""Where the leader of each role is elected: which database holds which role's lock.

A role's lock lives beside what it guards, so that the leader and the data it
writes share one server's fate: a projection's on the read store's database,
the saga's deadlines on the saga's. The embedded default runs in one process,
which leads everything. (The relays' leads are chosen by the composition root.)
"""

from __future__ import annotations

from infra.messaging.leadership import AdvisoryLockLeadership, Leadership, SoleLeader, advisory_leads
from infra.settings import Settings
from projections.leading import Leads


def projection_leads(settings: Settings) -> Leads | None:
    """One projector copy's leads, one per projection, on one session of the read store's database.

    None when embedded: the one copy leads them all.
    """
    dsn = settings.read_database
    if dsn is None:
        return None
    return advisory_leads(dsn, f"projection:{dsn.schema_name or 'public'}")


def deadline_leadership(settings: Settings, sagas: str) -> Leadership:
    """The lead of firing the saga application's deadlines, on its database: one copy fires them."""
    dsn = settings.database_of(sagas)
    if dsn is None:
        return SoleLeader()
    return AdvisoryLockLeadership(dsn, f"deadlines:{dsn.schema_name or 'public'}:{sagas}")

"""Rebuilding a projection from the event stores, and swapping it in whole.

The rebuild replays every followed log into a table of its own
(`read_orders__rebuild`), with positions of its own, while the live table goes
on serving readers and following new events. Nobody else writes that table, so
the rebuild folds many windows of the log in memory before it writes: a row
changed by twenty events is encoded and written once rather than once a window,
and the rows it has never written are copied in (COPY on PostgreSQL) rather
than upserted. The rows and the positions they reflect still commit together,
each time PENDING_ROWS rows wait and once the logs end. A projection that follows
several logs (the order summary reads the orders' and the sagas') reads them side
by side, the log least far along first, so that the events of one order meet
while its row is still in memory rather than read back from the table after a
whole log. Then one transaction locks the
live positions (a running projector waits), replays into the rebuilt table
whatever the live one has seen since, drops the live table, renames the
rebuilt one into its place and hands over its positions. Readers see the old
rows or the new ones, never a mix and never older ones, and the projector
carries on from where the rebuild stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from projections import tracking
from projections.applier import Applied, Applier, RowCache, fold, keyed_items, read_window
from projections.catalog import AnyProjection, named
from projections.changes import ChangeHub
from projections.runner import Projector
from projections.store import Tx


class RebuildConflictError(RuntimeError):
    """Another rebuild of the same projection moved its position: one of the two must give way."""


CACHED_ROWS = 20_000
"""Rows a rebuild keeps in memory between batches; the events of one order come close together."""

PENDING_ROWS = 10_000
"""Rows a rebuild folds before it writes them, with the position they reflect, in one transaction."""

Progress = Callable[[str, int, int], None]
"""Called as (projection name, notifications replayed so far, notifications to replay)."""


async def rebuild(
    projector: Projector, names: Iterable[str] | None = None, *, progress: Progress | None = None,
    batch_size: int = 5000, pending_rows: int = PENDING_ROWS, cached_rows: int = CACHED_ROWS,
) -> list[str]:
    """Rebuild the named projections (all of them for None), side by side; their names."""
    projections = named(names)
    await asyncio.gather(*(
        Rebuild(projector, live, batch_size, pending_rows, cached_rows).run(progress) for live in projections
    ))
    return [live.name for live in projections]


class Rebuild:
    def __init__(
        self, projector: Projector, live: AnyProjection, batch_size: int,
        pending_rows: int = PENDING_ROWS, cached_rows: int = CACHED_ROWS,
    ) -> None:
        self.projector = projector
        self.store = projector.store
        self.live = live
        self.shadow = live.shadow()
        self.batch_size = batch_size
        # Nobody watches the rebuilt rows before the swap; the projector tells of the live ones.
        self.applier = Applier(self.store, ChangeHub())
        self.uncommitted: list[Applied] = []  # batches replayed inside the swap, reported once it commits
        # Nobody else writes the rebuilt table: the rows written last need not be read back.
        self.rows = RowCache(cached_rows)
        # Folded but not yet written: the rows, which of them the table lacks, what was parked.
        self.pending_rows = pending_rows
        self.pending: dict[UUID, Any] = {}
        self.new: set[UUID] = set()
        self.failures: list[tracking.ProjectionFailure] = []
        self.written: dict[str, int] = {}  # the position committed in each log
        self.folded: dict[str, int] = {}  # the position folded up to

    async def run(self, progress: Progress | None) -> None:
        await self.prepare()
        names = self.live.applications
        known = await self.projector.heads()
        heads = {name: known.get(name, 0) for name in names}
        total, done = sum(heads.values()), 0
        positions = dict.fromkeys(names, 0)
        if progress is not None:
            progress(self.live.name, 0, total)
        while behind := [name for name in names if positions[name] < heads[name]]:
            # The log least far along: an order's events in several logs are folded close together,
            # while its row is still in memory, rather than one log after another.
            name = min(behind, key=lambda n: positions[n] / heads[n])
            position = positions[name]
            stop = min(position + self.batch_size, heads[name])
            await self.fold(name, position, stop)
            if len(self.pending) >= self.pending_rows:
                await self.write()
            done, positions[name] = done + stop - position, stop
            if progress is not None:
                progress(self.live.name, done, max(total, done))
            if stop == heads[name]:  # events recorded meanwhile are replayed too
                heads[name] = await self.head_of(name)
        await self.write()
        await self.swap_in()

    async def head_of(self, application: str) -> int:
        recorder = self.projector.applications[application].recorder
        return await asyncio.to_thread(lambda: recorder.max_notification_id() or 0)

    async def prepare(self) -> None:
        async with self.store.transaction() as tx:
            await tx.execute(f"DROP TABLE IF EXISTS {self.shadow.table.name}")
            for statement in self.shadow.table.create_statements(self.store.dialect):
                await tx.execute(statement)
            await tracking.reset(tx, self.shadow.tracking_name, self.shadow.applications)

    async def replay(self, application: str, position: int, stop: int, tx: Tx | None = None) -> None:
        """Replay the log after `position` up to `stop`, which must not be past its last notification."""
        if tx is None:
            await self.fold(application, position, stop)
            await self.write()
            return
        app = self.projector.applications[application]
        items = await asyncio.to_thread(
            read_window, app, position, stop, self.shadow.topics, opening=self.shadow.reads_personal_data
        )
        applied = await self.applier.apply_in(tx, self.shadow, application, position, stop, items, self.rows)
        if applied is None:
            raise self._conflict()
        self.uncommitted.append(applied)

    async def fold(self, application: str, position: int, stop: int) -> None:
        """Fold the log after `position` up to `stop` into the pending rows, writing nothing."""
        if self.folded.setdefault(application, position) != position:
            raise ValueError(f"{self.live.name} has folded {application} up to {self.folded[application]}")
        app = self.projector.applications[application]
        items = await asyncio.to_thread(
            read_window, app, position, stop, self.shadow.topics, opening=self.shadow.reads_personal_data
        )
        keyed = keyed_items(self.shadow, items)
        keys = {k for k, _ in keyed if k is not None}
        rows = {k: self.pending[k] for k in keys if k in self.pending}
        rows |= self.rows.take(keys - rows.keys())
        missing = keys - rows.keys()
        if missing and self.rows.dropped:  # only rows let go from the cache can be in the table
            async with self.store.transaction() as tx:
                rows |= await self.shadow.load(tx, missing)
        held = set(rows)
        changed, failures = fold(self.shadow, rows, keyed)
        self.new |= changed - held
        self.pending.update((k, rows[k]) for k in changed)
        self.rows.keep({k: row for k, row in rows.items() if k not in self.pending})
        self.failures += failures
        self.folded[application] = stop

    async def write(self) -> None:
        """Write the pending rows, what was parked and the positions folded up to, in one transaction."""
        moved = {name: (self.written.get(name, 0), last) for name, last in self.folded.items()
                 if last != self.written.get(name, 0)}
        if not moved and not self.pending:
            return
        async with self.store.transaction() as tx:
            for name, (expected, _) in moved.items():
                claimed = await tracking.claim(
                    tx, self.shadow.tracking_name, self.shadow.applications, name, expected,
                    for_update=self.store.dialect.for_update,
                )
                if not claimed:
                    raise self._conflict()
            await self.shadow.insert(tx, [row for key, row in self.pending.items() if key in self.new])
            await self.shadow.save(tx, {k: row for k, row in self.pending.items() if k not in self.new})
            await tracking.park(tx, self.failures)
            for name, (_, last) in moved.items():
                await tracking.advance(tx, self.shadow.tracking_name, name, last)
        self.applier.committed(Applied(set(), self.failures))
        self.rows.keep(self.pending)
        self.pending, self.new, self.failures = {}, set(), []
        self.written.update((name, last) for name, (_, last) in moved.items())

    def _conflict(self) -> RebuildConflictError:
        return RebuildConflictError(f"another rebuild of {self.live.name} is running; let it finish")

    async def swap_in(self) -> None:
        dialect = self.store.dialect
        async with self.store.transaction() as tx:
            live_at = await tracking.lock(tx, self.live.tracking_name, for_update=dialect.for_update)
            rebuilt_at = await tracking.lock(tx, self.shadow.tracking_name, for_update=dialect.for_update)
            for name in self.live.applications:
                position, head = rebuilt_at.get(name, 0), live_at.get(name, 0)
                while position < head:
                    stop = min(position + self.batch_size, head)
                    await self.replay(name, position, stop, tx)
                    position = stop
            await tracking.take_over(tx, self.live.tracking_name, self.shadow.tracking_name)
            await self.store.swap(tx, self.live.table, self.shadow.table)
        for applied in self.uncommitted:
            self.applier.committed(applied)

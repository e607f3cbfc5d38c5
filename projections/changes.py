"""In-process news of changed orders, so that watchers of an order wake at once.

The projector announces the orders whose rows a batch changed, after the batch
commits. A watcher still polls now and then, so it sees changes made by a
projector in another process too, only later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from uuid import UUID


class ChangeHub:
    def __init__(self) -> None:
        self._watchers: dict[UUID, set[asyncio.Event]] = {}
        self._any: set[asyncio.Event] = set()

    @contextmanager
    def watching(self, order_id: UUID | None) -> Iterator[asyncio.Event]:
        """An event set whenever the order (any order, for None) changes, while the block runs."""
        changed = asyncio.Event()
        watchers = self._any if order_id is None else self._watchers.setdefault(order_id, set())
        watchers.add(changed)
        try:
            yield changed
        finally:
            watchers.discard(changed)
            if order_id is not None and not watchers:
                self._watchers.pop(order_id, None)

    def announce(self, order_ids: Iterable[UUID]) -> None:
        for order_id in order_ids:
            for changed in self._watchers.get(order_id, ()):
                changed.set()
        for changed in self._any:
            changed.set()

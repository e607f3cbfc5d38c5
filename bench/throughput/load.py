"""The load: placing the orders from a few threads, paced at a rate or as fast as they go, and following
the saga log until every order's saga has ended."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from eventsourcing.utils import get_topic

from commands.base import ContextApplication
from commands.orders import PlaceOrder
from infra.bootstrap import System
from process_managers.saga import OrderFulfillment

SAGA_TERMINAL_TOPICS = [get_topic(OrderFulfillment.Completed), get_topic(OrderFulfillment.Compensated)]
PAGE = 2000


class TerminalWatcher:
    """Counts terminal sagas by reading only the Completed/Compensated rows of the saga log."""

    def __init__(self, sagas: ContextApplication, saga_ids: set[uuid.UUID]) -> None:
        self.sagas = sagas
        self.expected = saga_ids
        self.seen: set[uuid.UUID] = set()
        self.position = sagas.recorder.max_notification_id() or 0

    def poll(self) -> int:
        while True:
            page = self.sagas.recorder.select_notifications(
                self.position, PAGE, topics=SAGA_TERMINAL_TOPICS, inclusive_of_start=False
            )
            for notification in page:
                if notification.originator_id in self.expected:
                    self.seen.add(notification.originator_id)  # type: ignore[arg-type]
            if page:
                self.position = page[-1].id
            if len(page) < PAGE:
                return len(self.seen)


@dataclass
class Timing:
    place_s: float
    elapsed_s: float
    terminal_seen: int
    timed_out: bool
    errors: list[str] = field(default_factory=list)


def drive(
    system: System, commands: Sequence[PlaceOrder], *, placers: int, rate: float, timeout: float,
    poll: float, on_start: Callable[[], None] = lambda: None,
) -> Timing:
    """Place every order from `placers` threads (at `rate` per second if given) and wait for the end."""
    n = len(commands)
    watcher = TerminalWatcher(
        system.sagas, {OrderFulfillment.create_id(c.order_id) for c in commands}
    )
    lock, stop = threading.Lock(), threading.Event()
    cursor = iter(range(n))
    errors: list[str] = []

    def place() -> None:
        while not stop.is_set():
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            if rate:
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            try:
                system.orders.place_order(commands[index])
            except Exception as error:
                errors.append(f"placing order {index}: {error!r}")
                stop.set()

    threads = [threading.Thread(target=place, name=f"placer-{i}", daemon=True) for i in range(placers)]
    on_start()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    place_s: float | None = None
    timed_out = False
    while True:
        if place_s is None and not any(t.is_alive() for t in threads):
            place_s = time.perf_counter() - started
        if watcher.poll() >= n or errors:
            break
        if time.perf_counter() - started > timeout + (n / rate if rate else 0.0):
            timed_out = True
            break
        time.sleep(poll)
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join(30)
    return Timing(place_s if place_s is not None else elapsed, elapsed, len(watcher.seen), timed_out,
                  errors)

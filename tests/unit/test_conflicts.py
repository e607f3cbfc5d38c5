"""A command that collides with another writer is decided again at once; its caller retries later.

A conflict means the other writer has committed, so deciding again makes
progress. Nothing sleeps on the worker thread that runs the command: after
`max_conflict_retries` the command fails with `ConcurrencyError`, and the API
tries it again with backoff on its event loop (the consumers use the bus's
retry queue).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import IntegrityError

from commands.command import ConcurrencyError
from commands.inventory import Inventory, Restock
from domain.stock import Stock
from domain.values import Money
from infra.eventstore.persistence import application_env
from infra.settings import Settings
from read_api.write_side import WriteSide
from tests.dsl import ev, given

MOUSE = UUID("00000000-0000-4000-8000-00000000aaaa")


@pytest.fixture
def inventory(memory_settings: Settings) -> Iterator[Inventory]:
    app = Inventory(application_env(memory_settings, "Inventory"))
    app.events.put(given(
        ev(Stock.Listed, id=MOUSE, name="Wireless Mouse", price=Money.of("49.99")),
        ev(Stock.Restocked, id=MOUSE, quantity=10),
    ).events)
    yield app
    app.close()


@pytest.fixture
def no_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(seconds: float) -> None:
        raise AssertionError(f"a command slept {seconds} s on its thread")

    monkeypatch.setattr(time, "sleep", refuse)


def colliding(app: Inventory, monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """The store refuses the next `times` saves as another writer's version would; the calls, counted."""
    record, calls = app.record, [0]

    def record_unless_beaten(*args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] <= times:
            raise IntegrityError("duplicate key value violates unique constraint")
        record(*args, **kwargs)

    monkeypatch.setattr(app, "record", record_unless_beaten)
    return calls


@pytest.mark.usefixtures("no_sleeping")
def test_a_command_beaten_by_other_writers_is_decided_again_at_once_and_recorded_once(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = colliding(inventory, monkeypatch, times=3)

    assert inventory.restock(Restock(product_id=MOUSE, quantity=5)) is True

    assert calls[0] == 4
    assert inventory.get_stock(MOUSE).on_hand == 15


@pytest.mark.usefixtures("no_sleeping")
def test_a_command_that_keeps_being_beaten_gives_up_and_records_nothing(
    inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = colliding(inventory, monkeypatch, times=10**6)

    with pytest.raises(ConcurrencyError, match="conflicting writes"):
        inventory.restock(Restock(product_id=MOUSE, quantity=5))

    assert calls[0] == Inventory.max_conflict_retries
    assert inventory.get_stock(MOUSE).on_hand == 10


class GivesUpTwice:
    """The write system, as the API sees it, whose restocks give up on conflicts twice, then succeed."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.restock = inventory.restock
        self.threads: list[str] = []
        self.given_up = 0
        inventory.restock = self._restock  # type: ignore[method-assign]

    def _restock(self, command: Restock) -> bool:
        self.threads.append(threading.current_thread().name)
        if self.given_up < 2:
            self.given_up += 1
            raise ConcurrencyError("gave up after 20 conflicting writes")
        return self.restock(command)


async def test_the_api_tries_a_command_that_gave_up_again_on_its_event_loop(inventory: Inventory) -> None:
    system = GivesUpTwice(inventory)

    row = await WriteSide(system).restock(Restock(product_id=MOUSE, quantity=5))  # type: ignore[arg-type]

    assert row.on_hand == 15
    assert len(system.threads) == 3
    assert threading.current_thread().name not in system.threads  # each try ran off the loop


async def test_the_api_gives_up_on_a_command_that_keeps_giving_up(inventory: Inventory) -> None:
    system = GivesUpTwice(inventory)
    system.given_up = -10**6

    with pytest.raises(ConcurrencyError):
        await WriteSide(system).restock(Restock(product_id=MOUSE, quantity=5))  # type: ignore[arg-type]

    assert len(system.threads) == 5
    assert inventory.get_stock(MOUSE).on_hand == 10

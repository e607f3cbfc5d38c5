"""Where each order's saga stands: its status, the step in hand, each step's outcome, and every decision.

The saga's topics are written out here rather than taken from its classes: the
read side does not import the process manager, and stored topics are a pinned
contract anyway (a unit test checks these against the classes).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, overload
from uuid import UUID

from projections.facts import Fact
from projections.projection import CannotApplyError, Projection, Refused, require
from projections.read_model import SagaRow, SagaStepRow, SagaTimelineEntry
from projections.store import Index, Row, TableSpec, as_json, as_time, as_uuid

SAGA = "process_managers.saga:OrderFulfillment"
SAGA_STARTED = f"{SAGA}.Started"
# The saga's steps in the order it takes them (process_managers.steps.STEPS).
STEP_NAMES = ("payment", "inventory", "shipping", "notification")

# The decisions about one step, and the status each gives it.
_STEP_STATUS = {
    "StepRequested": "REQUESTED", "StepSucceeded": "SUCCEEDED", "StepFailed": "FAILED",
    "StepTimedOut": "TIMED_OUT", "CompensationRequested": "COMPENSATING", "StepCompensated": "COMPENSATED",
}
_SAGA_STATUS = {
    "CompensationStarted": "COMPENSATING", "Completed": "COMPLETED", "Compensated": "COMPENSATED",
    # An undoing unconfirmed after its last attempt waits for an operator's retry.
    "AttentionNeeded": "NEEDS_ATTENTION", "CompensationResumed": "COMPENSATING",
}
# Hearing that a stuck undoing was done after all ends the wait for an operator, as in the saga.
_GOES_ON = ("StepCompensated", "StepFailed")
_OTHERS = ("StockCommitRequested", "CompletionRequested", "CancellationRequested", "CancellationDeclined")
DECISIONS = ("Started", *_STEP_STATUS, *_SAGA_STATUS, *_OTHERS)
_STEP_INDEX = {name: index for index, name in enumerate(STEP_NAMES)}
PENDING_STEPS = tuple(SagaStepRow(name, "PENDING", 0) for name in STEP_NAMES)


def evolve(row: SagaRow | None, fact: Fact) -> SagaRow:
    """A saga after one of its decisions."""
    saga, refused = evolve_all(row, (fact,))
    if refused:
        raise refused[0][1]
    assert saga is not None  # one decision, applied
    return saga


def evolve_all(row: SagaRow | None, facts: Sequence[Fact]) -> tuple[SagaRow | None, list[Refused]]:
    """A saga after a run of its decisions, and those it could not apply (each skipped).

    The row is built once for the run: a replay folds a dozen decisions of a saga
    together, and a frozen row and a copy of its timeline per decision cost more than
    the rest of the fold.
    """
    saga = None if row is None else _Saga.of(row)
    refused: list[Refused] = []
    for fact in facts:
        try:
            saga = _decided(saga, fact)
        except Exception as error:
            refused.append((fact, error))
    if saga is None or len(refused) == len(facts):
        return row, refused
    return saga.row(), refused


class _Saga:
    """A saga's row while a run of its decisions is folded into it."""

    __slots__ = ("current_step", "id", "order_id", "status", "steps", "timeline", "updated_at")

    def __init__(
        self, id: UUID, order_id: UUID, status: str, current_step: str | None,
        steps: tuple[SagaStepRow, ...], updated_at: datetime, timeline: list[SagaTimelineEntry],
    ) -> None:
        self.id, self.order_id, self.status, self.current_step = id, order_id, status, current_step
        self.steps, self.updated_at, self.timeline = steps, updated_at, timeline

    @classmethod
    def of(cls, row: SagaRow) -> _Saga:
        return cls(row.id, row.order_id, row.status, row.current_step, row.steps, row.updated_at,
                   list(row.timeline))

    def row(self) -> SagaRow:
        return SagaRow(
            id=self.id, order_id=self.order_id, status=self.status, current_step=self.current_step,
            steps=self.steps, updated_at=self.updated_at, timeline=tuple(self.timeline),
        )


def _decided(saga: _Saga | None, fact: Fact) -> _Saga:
    # Everything that can refuse the decision comes before the first change to `saga`.
    name = fact.name
    if name == "Started":
        saga = _Saga(fact.originator_id, UUID(fact.data["order_id"]), "RUNNING", None, PENDING_STEPS,
                     fact.timestamp, [])
    else:
        saga = require(saga, fact)
    status, steps = saga.status, saga.steps
    if name in _STEP_STATUS:
        steps = _step_changed(steps, name, fact)
        if name in _GOES_ON and status == "NEEDS_ATTENTION":
            status = "COMPENSATING"
    elif name == "CompensationStarted":
        status = "COMPENSATING"
        steps = tuple(
            SagaStepRow(s.name, "SKIPPED", s.attempts) if s.status == "PENDING" else s for s in steps
        )
    elif name in _SAGA_STATUS:
        status = _SAGA_STATUS[name]
    elif name not in DECISIONS:
        raise CannotApplyError(f"saga progress does not read {fact.topic}")
    # (version, type, step, detail, recorded_at) in order: keywords cost a replay a tenth more.
    entry = SagaTimelineEntry(
        fact.originator_version, name, fact.data.get("step"), detail(fact), fact.timestamp
    )
    if steps is not saga.steps:
        saga.current_step, saga.steps = current_step(steps), steps
    saga.status, saga.updated_at = status, fact.timestamp
    saga.timeline.append(entry)
    return saga


def _step_changed(steps: tuple[SagaStepRow, ...], decision: str, fact: Fact) -> tuple[SagaStepRow, ...]:
    name = fact.data["step"]
    index = _STEP_INDEX.get(name)
    if index is None:
        raise CannotApplyError(f"the saga has no step {name!r}")
    attempts = int(fact.data["attempt"]) if decision == "StepRequested" else steps[index].attempts
    return (*steps[:index], _step_row(name, _STEP_STATUS[decision], attempts), *steps[index + 1:])


@functools.lru_cache(maxsize=1024)
def _step_row(name: str, status: str, attempts: int) -> SagaStepRow:
    # Rows are frozen values: one per (step, status, attempts) serves every saga, and a replay builds fewer.
    return SagaStepRow(name, status, attempts)


def current_step(steps: tuple[SagaStepRow, ...]) -> str | None:
    """The step being done, else the one being undone; None between steps and at the end."""
    for wanted in ("REQUESTED", "COMPENSATING"):
        for step in steps:
            if step.status == wanted:
                return step.name
    return None


def detail(fact: Fact) -> str | None:
    """What a person reading the timeline wants to know about a decision, in a few words."""
    data, name = fact.data, fact.name
    if name == "CompensationResumed" and data.get("requested_by"):
        return f"retried by {data['requested_by']}"
    if "reason" in data:
        return str(data["reason"])
    command = data.get("command")
    if name == "StepRequested" or (name == "CompensationRequested" and data.get("attempt", 1) > 1):
        return f"attempt {data['attempt']}: {data['command']['type']}"
    if name == "StepTimedOut":
        return f"attempt {data['attempt']} timed out"
    if command:
        return str(command["type"])
    if name == "Started":
        return f"{len(data['lines'])} line(s), {data['total']['amount']} {data['total']['currency']}"
    return None


class SagaProgress(Projection[SagaRow]):
    name = "saga_progress"
    applications = ("OrderFulfillment",)
    topics = frozenset(f"{SAGA}.{name}" for name in DECISIONS)
    reads_personal_data = False  # the timeline tells of lines, totals and commands, never of an address
    folds_runs = True  # a row and its timeline built once for a run of decisions, not once a decision
    base_table = TableSpec(
        "read_sagas",
        (("id", "uuid"), ("order_id", "uuid"), ("status", "text"), ("current_step", "text"),
         ("steps", "json"), ("timeline", "json"), ("updated_at", "ts")),
        ("id",),
        (Index("order_idx", "order_id"), Index("status_idx", "status, id")),
    )

    def evolve(self, row: SagaRow | None, fact: Fact) -> SagaRow:
        return evolve(row, fact)

    def evolve_all(self, row: SagaRow | None, facts: Sequence[Fact]) -> tuple[SagaRow | None, list[Refused]]:
        return evolve_all(row, facts)

    def order_of(self, row: SagaRow) -> UUID | None:
        return row.order_id

    def encode(self, row: SagaRow) -> tuple[Any, ...]:
        # The rows' fields are the JSON's keys, in order: the store writes them as they are.
        return (row.id, row.order_id, row.status, row.current_step, list(row.steps), list(row.timeline),
                row.updated_at)

    def decode(self, record: Row) -> SagaRow:
        steps = tuple(
            SagaStepRow(s["name"], s["status"], int(s["attempts"])) for s in as_json(record["steps"])
        )
        return SagaRow(
            id=as_uuid(record["id"]), order_id=as_uuid(record["order_id"]), status=record["status"],
            current_step=record["current_step"], steps=steps, updated_at=as_time(record["updated_at"]),
            timeline=StoredTimeline(record["timeline"]),
        )


class StoredTimeline(Sequence[SagaTimelineEntry]):
    """A saga's decisions as its row stores them, decoded when first read, then kept.

    An order's read, a page of orders, a saga's status: most reads of a saga row
    never look at its timeline, whose decoding (a dozen entries, each with its
    time parsed) cost twice the rest of the row's. It equals, and hashes as, the
    tuple of its entries, which is what a row built in memory holds.
    """

    __slots__ = ("_entries", "_stored")

    def __init__(self, stored: Any) -> None:
        self._stored = stored
        self._entries: tuple[SagaTimelineEntry, ...] | None = None

    @property
    def entries(self) -> tuple[SagaTimelineEntry, ...]:
        if self._entries is None:
            self._entries = tuple(
                SagaTimelineEntry(int(e["version"]), e["type"], e["step"], e["detail"],
                                  as_time(e["recorded_at"]))
                for e in as_json(self._stored)
            )
            self._stored = None
        return self._entries

    @overload
    def __getitem__(self, index: int) -> SagaTimelineEntry: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[SagaTimelineEntry, ...]: ...

    def __getitem__(self, index: int | slice) -> SagaTimelineEntry | tuple[SagaTimelineEntry, ...]:
        return self.entries[index]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[SagaTimelineEntry]:
        return iter(self.entries)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StoredTimeline):
            return self.entries == other.entries
        if isinstance(other, tuple):
            return self.entries == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.entries)

    def __repr__(self) -> str:
        return repr(self.entries)

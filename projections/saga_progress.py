"""Where each order's saga stands: its status, the step in hand, each step's outcome, and every decision.

The saga's topics are written out here rather than taken from its classes: the
read side does not import the process manager, and stored topics are a pinned
contract anyway (a unit test checks these against the classes).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from projections.facts import Fact
from projections.projection import CannotApplyError, Projection, require
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
_SAGA_STATUS = {"CompensationStarted": "COMPENSATING", "Completed": "COMPLETED", "Compensated": "COMPENSATED"}
_OTHERS = ("StockCommitRequested", "CompletionRequested", "CancellationRequested", "CancellationDeclined")
DECISIONS = ("Started", *_STEP_STATUS, *_SAGA_STATUS, *_OTHERS)


def evolve(row: SagaRow | None, fact: Fact) -> SagaRow:
    """A saga after one of its decisions."""
    if fact.name == "Started":
        steps = tuple(SagaStepRow(name, "PENDING", 0) for name in STEP_NAMES)
        saga = SagaRow(
            id=fact.originator_id, order_id=UUID(fact.data["order_id"]), status="RUNNING",
            current_step=None, steps=steps, updated_at=fact.timestamp,
        )
        return _noted(saga, fact)
    saga = replace(require(row, fact), updated_at=fact.timestamp)
    if fact.name in _STEP_STATUS:
        saga = _step_changed(saga, fact)
    elif fact.name == "CompensationStarted":
        skipped = tuple(replace(s, status="SKIPPED") if s.status == "PENDING" else s for s in saga.steps)
        saga = replace(saga, status="COMPENSATING", steps=skipped)
    elif fact.name in _SAGA_STATUS:
        saga = replace(saga, status=_SAGA_STATUS[fact.name])
    elif fact.name not in _OTHERS:
        raise CannotApplyError(f"saga progress does not read {fact.topic}")
    return _noted(saga, fact)


def _step_changed(saga: SagaRow, fact: Fact) -> SagaRow:
    name = fact.data["step"]
    if name not in STEP_NAMES:
        raise CannotApplyError(f"the saga has no step {name!r}")

    def changed(step: SagaStepRow) -> SagaStepRow:
        if step.name != name:
            return step
        attempts = int(fact.data["attempt"]) if fact.name == "StepRequested" else step.attempts
        return replace(step, status=_STEP_STATUS[fact.name], attempts=attempts)

    return replace(saga, steps=tuple(changed(s) for s in saga.steps))


def _noted(saga: SagaRow, fact: Fact) -> SagaRow:
    entry = SagaTimelineEntry(
        version=fact.originator_version, type=fact.name, step=fact.data.get("step"),
        detail=detail(fact), recorded_at=fact.timestamp,
    )
    return replace(saga, current_step=current_step(saga.steps), timeline=(*saga.timeline, entry))


def current_step(steps: tuple[SagaStepRow, ...]) -> str | None:
    """The step being done, else the one being undone; None between steps and at the end."""
    for wanted in ("REQUESTED", "COMPENSATING"):
        for step in steps:
            if step.status == wanted:
                return step.name
    return None


def detail(fact: Fact) -> str | None:
    """What a person reading the timeline wants to know about a decision, in a few words."""
    data = fact.data
    if "reason" in data:
        return str(data["reason"])
    command = data.get("command")
    if fact.name == "StepRequested":
        return f"attempt {data['attempt']}: {data['command']['type']}"
    if fact.name == "StepTimedOut":
        return f"attempt {data['attempt']} timed out"
    if command:
        return str(command["type"])
    if fact.name == "Started":
        return f"{len(data['lines'])} line(s), {data['total']['amount']} {data['total']['currency']}"
    return None


class SagaProgress(Projection[SagaRow]):
    name = "saga_progress"
    applications = ("OrderFulfillment",)
    topics = frozenset(f"{SAGA}.{name}" for name in DECISIONS)
    base_table = TableSpec(
        "read_sagas",
        (("id", "uuid"), ("order_id", "uuid"), ("status", "text"), ("current_step", "text"),
         ("steps", "json"), ("timeline", "json"), ("updated_at", "ts")),
        ("id",),
        (Index("order_idx", "order_id"),),
    )

    def evolve(self, row: SagaRow | None, fact: Fact) -> SagaRow:
        return evolve(row, fact)

    def order_of(self, row: SagaRow) -> UUID | None:
        return row.order_id

    def encode(self, row: SagaRow) -> tuple[Any, ...]:
        steps = [{"name": s.name, "status": s.status, "attempts": s.attempts} for s in row.steps]
        timeline = [
            {"version": e.version, "type": e.type, "step": e.step, "detail": e.detail,
             "recorded_at": e.recorded_at.isoformat()}
            for e in row.timeline
        ]
        return (row.id, row.order_id, row.status, row.current_step, steps, timeline, row.updated_at)

    def decode(self, record: Row) -> SagaRow:
        steps = tuple(
            SagaStepRow(s["name"], s["status"], int(s["attempts"])) for s in as_json(record["steps"])
        )
        timeline = tuple(
            SagaTimelineEntry(int(e["version"]), e["type"], e["step"], e["detail"], as_time(e["recorded_at"]))
            for e in as_json(record["timeline"])
        )
        return SagaRow(
            id=as_uuid(record["id"]), order_id=as_uuid(record["order_id"]), status=record["status"],
            current_step=record["current_step"], steps=steps, updated_at=as_time(record["updated_at"]),
            timeline=timeline,
        )

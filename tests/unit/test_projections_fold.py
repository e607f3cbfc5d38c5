"""Folding a batch: each row's facts as one run where a projection builds its row once for them."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from eventsourcing.persistence import Notification

from process_managers.steps import StepName
from projections import saga_progress
from projections.applier import Unreadable, fold, keyed_items
from projections.facts import Fact, fact_of
from projections.projection import CannotApplyError
from projections.read_model import SagaRow
from tests.sagas import Deadline, Order, story


def facts(events: list[Any], first: int = 1) -> list[Fact]:
    return [fact_of(event, "OrderFulfillment", n) for n, event in enumerate(events, first)]


def one_at_a_time(row: SagaRow | None, run: list[Fact]) -> SagaRow | None:
    for fact in run:
        with contextlib.suppress(CannotApplyError):
            row = saga_progress.evolve(row, fact)
    return row


def stories() -> list[list[Fact]]:
    order = Order.new()
    return [
        facts(story(order, *order.happy_replies(), order.completed())),
        facts(story(order, order.charged(), order.rejected(), order.refunded(), order.cancelled())),
        facts(story(order, Deadline(StepName.PAYMENT))),
    ]


@pytest.mark.parametrize("run", stories(), ids=["completed", "undone", "timed out"])
def test_a_saga_folded_as_one_run_is_the_row_its_decisions_make_one_at_a_time(run: list[Fact]) -> None:
    whole, refused = saga_progress.evolve_all(None, run)
    assert refused == []
    assert whole == one_at_a_time(None, run)

    # Split across two batches, the second run starting from the first's row.
    half = len(run) // 2
    first, _ = saga_progress.evolve_all(None, run[:half])
    second, _ = saga_progress.evolve_all(first, run[half:])
    assert second is not None and second == whole
    assert [entry.version for entry in second.timeline] == list(range(1, len(run) + 1))


def test_a_decision_it_cannot_apply_is_skipped_and_the_rest_of_the_run_is_applied() -> None:
    run = stories()[0]
    bad = run[3]._replace(data={**run[3].data, "step": "teleport"})
    spoilt = [*run[:3], bad, *run[4:]]

    row, refused = saga_progress.evolve_all(None, spoilt)

    assert [fact for fact, _ in refused] == [bad]
    assert isinstance(refused[0][1], CannotApplyError)
    assert row == one_at_a_time(None, spoilt)
    assert row is not None and len(row.timeline) == len(run) - 1


def test_a_run_with_nothing_applied_leaves_the_row_as_it_was() -> None:
    run = stories()[0]
    started, _ = saga_progress.evolve_all(None, run[:1])

    nothing, refused = saga_progress.evolve_all(None, run[1:3])  # a saga never started
    assert nothing is None
    assert len(refused) == 2

    bad = run[1]._replace(data={**run[1].data, "step": "teleport"})
    same, refused = saga_progress.evolve_all(started, [bad])
    assert same is started
    assert [fact for fact, _ in refused] == [bad]


def test_a_batch_folds_each_saga_s_run_and_parks_what_it_cannot_apply_in_the_batch_s_order() -> None:
    projection = saga_progress.SagaProgress()
    other = Order.new()
    one, two = stories()[0], facts(story(other, other.charged()), first=100)
    bad = one[2]._replace(data={**one[2].data, "step": "teleport"}, notification_id=50)
    unreadable = Unreadable("OrderFulfillment", Notification(
        id=60, originator_id=one[0].originator_id, originator_version=99, topic=one[4].topic, state=b"{"),
        "not JSON")
    # The two sagas' decisions interleaved, as a log holds them.
    batch: list[Any] = [one[0], two[0], one[1], bad, two[1], unreadable, *one[3:], *two[2:]]
    assert len(two) > 2
    batch.sort(key=lambda item: item.notification_id)

    rows: dict[Any, Any] = {}
    changed, failures = fold(projection, rows, keyed_items(projection, batch))

    sagas = {one[0].originator_id, two[0].originator_id}
    assert changed == sagas and rows.keys() == sagas
    assert [f.notification_id for f in failures] == sorted([bad.notification_id, unreadable.notification_id])
    kept = [item for item in batch if item is not bad and item is not unreadable]
    assert rows[one[0].originator_id] == one_at_a_time(None, [f for f in kept if f in one])
    assert rows[two[0].originator_id] == one_at_a_time(None, two)


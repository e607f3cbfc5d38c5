"""Saga step latency, timed from the saga's own events as its relay reads them.

The saga records when it asks for a step (`StepRequested`, or `CompensationRequested`
for its undoing) and when it records the step's outcome; both events carry the
time they were recorded. The saga's relay reads its log in order, so a step's
request comes before its outcome: `StepClock` keeps the time of each request
still awaiting its outcome and observes the difference when the outcome comes.
Nothing here runs per message beyond a topic lookup, and only the events that
end a step cost a histogram observation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from prometheus_client import Histogram

from process_managers.saga import OrderFulfillment

STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Whether each request asks for the step's undoing, and whether each outcome ends that.
ASKED = {
    get_topic(OrderFulfillment.StepRequested): False,
    get_topic(OrderFulfillment.CompensationRequested): True,
}
ENDED = {
    get_topic(OrderFulfillment.StepSucceeded): (False, "succeeded"),
    get_topic(OrderFulfillment.StepFailed): (False, "failed"),
    get_topic(OrderFulfillment.StepTimedOut): (False, "timed_out"),
    get_topic(OrderFulfillment.StepCompensated): (True, "compensated"),
}
SAGA_ENDED = frozenset((get_topic(OrderFulfillment.Completed), get_topic(OrderFulfillment.Compensated)))


class StepClock:
    """Observes `seconds{step, outcome}` for each saga step that ends, from the saga's events in log order.

    What is kept is the time of each request still awaiting its outcome, forgotten at
    the outcome or at the saga's end. A relay that starts (or takes the lead) in the
    middle of a saga has not read the requests before its position and leaves their
    outcomes untimed: a few steps after a restart go uncounted, none counts twice.
    """

    def __init__(self, seconds: Histogram) -> None:
        self.seconds = seconds
        self.asked: dict[UUID | str, dict[tuple[str, bool], datetime]] = {}
        # A window read again (because publishing it failed) must not time its steps twice.
        self.read_up_to = 0

    def read(self, notification: Notification, state: Mapping[str, Any]) -> None:
        """Read one saga event, given its stored state (as the relay has decoded it)."""
        if notification.id <= self.read_up_to:
            return
        self.read_up_to, topic, saga = notification.id, notification.topic, notification.originator_id
        if topic in ASKED:
            self.asked.setdefault(saga, {})[(state["step"], ASKED[topic])] = _time(state)
        elif topic in ENDED:
            undoing, outcome = ENDED[topic]
            asked = self.asked.get(saga, {}).pop((state["step"], undoing), None)
            if asked is not None:
                seconds = (_time(state) - asked).total_seconds()
                self.seconds.labels(state["step"], outcome).observe(max(0.0, seconds))
        elif topic in SAGA_ENDED:
            self.asked.pop(saga, None)


def _time(state: Mapping[str, Any]) -> datetime:
    at = state["timestamp"]
    return at if isinstance(at, datetime) else datetime.fromisoformat(at)

"""Every message carries a W3C trace context derived from its ids: one trace per order, a span per message."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Notification
from opentelemetry import trace

from commands.contract.messages import Envelope
from infra.messaging.relay import saga_commands
from infra.observability.tracing import (
    extract,
    parent_span_id,
    span_id_of,
    trace_context_for,
    traced_envelope,
)

pytestmark = pytest.mark.unit

TRACEPARENT = re.compile(r"00-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})")


def event(
    order_id: UUID, message_id: str, causation_id: str | None, type_: str = "PaymentCharged"
) -> Envelope:
    source, _, position = message_id.partition(":")
    return traced_envelope(
        message_id=message_id, type=type_, kind="event", correlation_id=order_id, causation_id=causation_id,
        occurred_at=datetime.now(UTC), source=source, position=int(position), routing_key=f"x.{type_}",
        payload={"order_id": str(order_id)},
    )


def saga_command(order_id: UUID, command_id: UUID, heard: str) -> Envelope:
    state: dict[str, Any] = {
        "correlation_id": str(order_id), "causation_id": heard, "timestamp": datetime.now(UTC).isoformat(),
        "command": {"type": "ChargePayment", "context": "payments",
                    "payload": {"command_id": str(command_id), "order_id": str(order_id)}},
    }
    notification = Notification(id=7, originator_id=uuid4(), originator_version=2, topic="t", state=b"")
    [(_, envelope)] = saga_commands("OrderFulfillment", notification, state)
    return envelope


def traceparent(envelope: Envelope) -> re.Match[str]:
    assert envelope.trace is not None
    match = TRACEPARENT.fullmatch(envelope.trace["traceparent"])
    assert match is not None, envelope.trace
    return match


def test_a_trace_context_is_a_valid_w3c_traceparent() -> None:
    order_id = uuid4()
    context = trace_context_for(event(order_id, "Payments:3", "command:x"))
    match = TRACEPARENT.fullmatch(context["traceparent"])
    assert match is not None
    assert match["trace"] == order_id.hex and match["trace"] != "0" * 32
    assert match["span"] != "0" * 16 and match["flags"] == "01"
    span = trace.get_current_span(extract(context)).get_span_context()
    assert span.is_valid and span.is_remote and span.trace_id == order_id.int


def test_every_message_of_one_order_shares_its_trace_and_has_a_span_of_its_own() -> None:
    order_id, command_id = uuid4(), uuid4()
    placed = event(order_id, "Orders:1", "command:placing", "OrderPlaced")
    charge = saga_command(order_id, command_id, heard=placed.message_id)
    charged = event(order_id, "Payments:3", f"command:{command_id}")
    other = event(uuid4(), "Payments:4", "command:other")
    parents = [traceparent(m) for m in (placed, charge, charged)]
    assert {p["trace"] for p in parents} == {order_id.hex}
    assert len({p["span"] for p in parents}) == 3
    assert traceparent(other)["trace"] != order_id.hex


def test_a_messages_parent_span_is_the_span_of_the_message_that_caused_it() -> None:
    order_id, command_id = uuid4(), uuid4()
    placed = event(order_id, "Orders:1", "command:placing", "OrderPlaced")
    charge = saga_command(order_id, command_id, heard=placed.message_id)
    charged = event(order_id, "Payments:3", f"command:{command_id}")
    assert charge.trace is not None
    assert parent_span_id(charge.trace) == traceparent(placed)["span"]
    assert parent_span_id(trace_context_for(charged)) == traceparent(charge)["span"]
    assert traceparent(placed)["span"] == span_id_of(placed.message_id)


def test_the_trace_context_is_the_same_every_time_the_message_is_published() -> None:
    order_id = uuid4()
    first, again = event(order_id, "Payments:3", "c"), event(order_id, "Payments:3", "c")
    assert first.trace == again.trace == trace_context_for(again)


def test_a_message_of_no_order_and_no_cause_still_has_a_valid_context() -> None:
    envelope = event(uuid4(), "Inventory:9", None).model_copy(update={"correlation_id": None, "trace": None})
    context = trace_context_for(envelope)
    assert TRACEPARENT.fullmatch(context["traceparent"]) and "tracestate" not in context


def test_a_message_of_no_order_starts_a_trace_of_its_own_whatever_caused_it() -> None:
    listed = event(uuid4(), "Inventory:9", "command:listing", "ProductListed").model_copy(
        update={"correlation_id": None, "trace": None})
    context = trace_context_for(listed)
    assert parent_span_id(context) is None and "tracestate" not in context


def test_an_envelope_built_with_its_trace_is_the_envelope_traced_after_it_was_built() -> None:
    order_id, command_id = uuid4(), uuid4()
    common: dict[str, Any] = {"occurred_at": datetime.now(UTC), "source": "OrderFulfillment", "position": 7}
    charge: dict[str, Any] = {
        **common, "message_id": "OrderFulfillment:7", "type": "ChargePayment", "kind": "command",
        "correlation_id": str(order_id), "causation_id": "OrderFulfillment:7",
        "routing_key": "payments.ChargePayment", "payload": {"command_id": str(command_id)},
    }
    charged: dict[str, Any] = {
        **common, "message_id": "Payments:3", "type": "PaymentCharged", "kind": "event",
        "correlation_id": order_id, "causation_id": f"command:{command_id}",
        "routing_key": "payments.PaymentCharged", "payload": {"order_id": str(order_id)},
    }
    listed = {**charged, "correlation_id": None, "causation_id": "command:listing"}
    for fields, cause in ((charge, "Orders:1"), (charge, None), (charged, None), (listed, None)):
        built = traced_envelope(**fields, cause=cause)
        envelope = Envelope(**fields)
        traced = envelope.model_copy(update={"trace": trace_context_for(envelope, cause)})
        assert built == traced and built.trace is not None

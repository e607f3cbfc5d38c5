"""The spans a traced process exports keep the ids the envelopes name, and leave no parent unexported."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from commands.orders import RequestCancellation
from infra.observability.tracing import handling, ids_of, parent_span_id, publishing, span_id_of
from read_api.tracing import sending
from tests.traces import exported_spans
from tests.unit.test_tracing import event, saga_command

pytestmark = pytest.mark.unit




@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    with exported_spans() as exporter:
        yield exporter


def test_a_published_message_has_the_span_its_envelope_names_and_its_consumer_is_a_child_of_it(
    exported: InMemorySpanExporter,
) -> None:
    placed = event(uuid4(), "Orders:1", "command:placing", "OrderPlaced")
    with publishing([placed]):
        pass
    with handling(placed):
        pass
    consumer, producer = sorted(exported.get_finished_spans(), key=lambda s: s.kind is SpanKind.PRODUCER)
    assert placed.trace is not None and producer.context is not None and consumer.parent is not None
    assert (producer.context.trace_id, producer.context.span_id) == ids_of(placed.trace)
    assert producer.parent is not None and producer.parent.span_id == int(span_id_of("command:placing"), 16)
    assert consumer.parent.span_id == producer.context.span_id


def test_a_command_the_api_sends_starts_its_orders_trace_linked_to_the_request(
    exported: InMemorySpanExporter,
) -> None:
    cancel = RequestCancellation(order_id=uuid4(), reason="changed my mind")
    requested = event(cancel.order_id, "Orders:2", cancel.tracking_name, "OrderCancellationRequested")
    with trace.get_tracer("test").start_as_current_span("POST /graphql", kind=SpanKind.SERVER), \
            sending(cancel, cancel.order_id):
        pass
    spans = exported.get_finished_spans()
    [root] = [s for s in spans if s.context and s.context.trace_id == cancel.order_id.int]
    assert requested.trace is not None and root.context is not None and root.parent is None
    assert root.context.span_id == int(parent_span_id(requested.trace) or "0", 16)
    [link] = root.links
    [sent] = [s for s in spans if s.context and s.context.span_id == link.context.span_id]
    assert sent.name == "send RequestCancellation" and sent.parent is not None


def test_a_saga_deadline_names_no_parent_and_a_sql_call_outside_traced_work_is_not_recorded(
    exported: InMemorySpanExporter,
) -> None:
    timed_out = saga_command(uuid4(), uuid4(), heard="OrderFulfillment:deadline:payment:1")
    assert timed_out.trace is not None and parent_span_id(timed_out.trace) is None
    with trace.get_tracer("test").start_as_current_span("SELECT", kind=SpanKind.CLIENT):
        pass
    assert exported.get_finished_spans() == ()

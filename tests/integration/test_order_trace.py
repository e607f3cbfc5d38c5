"""One order, placed over GraphQL, leaves one connected trace: the request, every relay, every consumer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from uuid import UUID

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind

from infra.messaging.bus import Bus
from infra.settings import Settings
from tests.api_harness import data_of, serving
from tests.integration.test_graphql_orders import PLACE, placement, settled
from tests.saga_harness import MOUSE
from tests.traces import exported_spans

pytestmark = pytest.mark.integration

CONSUMERS = ("orders", "payments", "inventory", "shipping", "notifications", "saga")


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    with exported_spans() as exporter:
        yield exporter


def attribute(span: ReadableSpan, name: str) -> str:
    return str((span.attributes or {}).get(name, ""))


def consumer_of(span: ReadableSpan) -> str:
    """The role that handled a CONSUMER span's message: the context a command is for, or the saga."""
    if attribute(span, "saga.message_kind") == "event":
        return "saga"
    return attribute(span, "messaging.destination.name").split(".")[0]


def ids(context: SpanContext | None) -> tuple[int, int] | None:
    return None if context is None else (context.trace_id, context.span_id)


def orphans(spans: Sequence[ReadableSpan]) -> list[str]:
    exported = {ids(s.context) for s in spans}
    return [s.name for s in spans if s.parent and ids(s.parent) not in exported]


async def test_an_order_placed_over_graphql_is_one_trace_from_its_request_to_its_saga(
    stack: tuple[Settings, Bus], exported: InMemorySpanExporter
) -> None:
    settings, bus = stack
    async with serving(settings, bus) as served:
        payload = (await data_of(served.client, PLACE, placement((MOUSE, 1))))["placeOrder"]
        order_id = UUID(payload["order"]["id"])
        assert (await settled(served, str(order_id)))["status"] == "COMPLETED"
    spans = exported.get_finished_spans()

    assert orphans(spans) == []
    order = [s for s in spans if s.context and s.context.trace_id == order_id.int]
    [root] = [s for s in order if s.parent is None]
    assert root.name == "send PlaceOrder" and root.kind is SpanKind.PRODUCER
    [sent] = [s for s in spans if ids(s.context) in {ids(link.context) for link in root.links}]
    [request] = [s for s in spans if ids(s.context) == ids(sent.parent)]
    assert request.kind is SpanKind.SERVER and "/graphql" in request.name
    published = {s.name for s in order if s.kind is SpanKind.PRODUCER}
    assert {"publish OrderPlaced", "publish ChargePayment", "publish OrderCompleted"} <= published
    handled = [s for s in order if s.kind is SpanKind.CONSUMER]
    assert {consumer_of(s) for s in handled} == set(CONSUMERS)
    by_id = {s.context.span_id: s for s in order if s.context}
    assert all(s.parent and by_id[s.parent.span_id].kind is SpanKind.PRODUCER for s in handled)

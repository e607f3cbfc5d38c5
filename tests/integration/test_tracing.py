"""Orders run through the whole system leave one trace each, across the saga and every context it asks."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from uuid import UUID

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commands.contract.messages import Envelope
from infra.messaging.in_process import InProcessBus
from infra.settings import Settings
from tests.saga_harness import LAPTOP, MOUSE, finished, place, running
from tests.traces import exported_spans

pytestmark = pytest.mark.integration

TRACEPARENT = re.compile(r"00-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})-01")


class RecordingBus(InProcessBus):
    """The in-process bus, keeping every envelope the relays publish."""

    def __init__(self) -> None:
        super().__init__(retry_delays=(0.05, 0.1, 0.2))
        self.published: list[Envelope] = []

    async def publish(self, exchange: str, envelopes: Sequence[Envelope]) -> None:
        self.published += envelopes
        await super().publish(exchange, envelopes)




@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with exported_spans(TracerProvider()) as exporter:
        yield exporter


def of_order(spans: Sequence[ReadableSpan], order_id: UUID) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get("saga.correlation_id") == str(order_id)]


async def test_every_hop_of_an_order_is_a_consumer_span_of_one_trace(
    sqlite_settings: Settings, spans: InMemorySpanExporter
) -> None:
    bus = RecordingBus()
    async with running(sqlite_settings, bus) as system:
        order_ids = [place(system, (MOUSE, 1)), place(system, (LAPTOP, 1), (MOUSE, 2)), place(system)]
        for order_id in order_ids:
            await finished(system, order_id)
    finished_spans = spans.get_finished_spans()
    for order_id in order_ids:
        mine = of_order(finished_spans, order_id)
        assert {s.context.trace_id for s in mine if s.context} == {order_id.int}
        assert all(s.parent is not None and s.parent.trace_id == order_id.int for s in mine)
        heard_by_saga = {s.name for s in mine if (s.attributes or {}).get("saga.message_kind") == "event"}
        assert {"handle OrderPlaced", "handle PaymentCharged", "handle OrderCompleted"} <= heard_by_saga
        contexts = {str((s.attributes or {})["messaging.destination.name"]).split(".")[0]
                    for s in mine if (s.attributes or {}).get("saga.message_kind") == "command"}
        assert {"payments", "inventory", "shipping", "notifications", "orders"} <= contexts


async def test_every_published_envelope_carries_its_trace_context(
    sqlite_settings: Settings, spans: InMemorySpanExporter
) -> None:
    bus = RecordingBus()
    async with running(sqlite_settings, bus) as system:
        order_id = place(system)
        await finished(system, order_id)
    mine = [e for e in bus.published if e.correlation_id == order_id]
    assert len(mine) >= 10
    for envelope in mine:
        assert envelope.trace is not None
        match = TRACEPARENT.fullmatch(envelope.trace["traceparent"])
        assert match is not None and match["trace"] == order_id.hex

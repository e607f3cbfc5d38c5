"""The tracer provider a traced process installs (`configure_tracing`, or a test): what it adds to the SDK's.

Its id generator gives the spans of messages the ids their envelopes name
(`infra.observability.tracing.derived_ids`). Its sampler drops a root that is a
client call: a SQL call outside any traced work (the relay's and the projector's
polling) would otherwise be a trace of its own every half second. Its first
processor mirrors each command the API sends into its order's trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from infra.observability.tracing import (
    COMMAND_KEY,
    CORRELATION_ID,
    MESSAGE_ID,
    DerivedIds,
    derived_ids,
    span_id_of,
    trace_id_of,
)


class QuietRoots(Sampler):
    """Every root but a client call (SQL, mostly) that no traced work started."""

    def should_sample(
        self, parent_context: Context | None, trace_id: int, name: str, kind: SpanKind | None = None,
        attributes: Attributes = None, links: Sequence[Link] | None = None, trace_state: Any = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links)

    def get_description(self) -> str:
        return "QuietRoots"


class CommandRoots(SpanProcessor):
    """Mirrors each command the API sends as the root span of its order's trace.

    The API's span of a command (a PRODUCER span whose `messaging.message.id` is
    the command's key, `command:<id>`) lives in the request's trace. The events the
    command records name that key as their cause, so their spans' parent is the span
    derived from it, in the order's trace: this processor exports that span, with
    the API's span's times and a link to it.
    """

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("saga-shop")

    def on_end(self, span: ReadableSpan) -> None:
        attributes = dict(span.attributes or {})
        key = str(attributes.get(MESSAGE_ID, ""))
        if span.kind is not SpanKind.PRODUCER or not key.startswith(COMMAND_KEY) or span.context is None:
            return
        order = str(attributes.get(CORRELATION_ID) or "")
        trace_id = int(trace_id_of(UUID(order) if order else None, key), 16)
        if span.context.trace_id == trace_id:
            return  # in the order's trace already: the relay's span of a saga command
        with derived_ids(trace_id, int(span_id_of(key), 16)):
            root = self._tracer.start_span(
                span.name, context=Context(), kind=SpanKind.PRODUCER, start_time=span.start_time,
                attributes=attributes, links=[Link(span.context)],
            )
        root.end(end_time=span.end_time)


def tracer_provider(service_name: str = "saga-shop") -> TracerProvider:
    """A provider that keeps the messages' derived ids; add the exporting processor, then install it."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                              id_generator=DerivedIds(), sampler=ParentBased(root=QuietRoots()))
    provider.add_span_processor(CommandRoots(provider))
    return provider


def instrument_sql() -> list[str]:
    """SQL spans for the event store (psycopg) and the read store (asyncpg), where they are installed."""
    instrumented = []
    try:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    except ImportError:
        pass
    else:
        PsycopgInstrumentor().instrument(skip_dep_check=True)
        instrumented.append("psycopg")
    try:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    except ImportError:
        pass
    else:
        AsyncPGInstrumentor().instrument(skip_dep_check=True)  # type: ignore[no-untyped-call]
        instrumented.append("asyncpg")
    return instrumented

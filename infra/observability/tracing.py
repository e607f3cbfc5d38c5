"""Trace context for every message, derived from its ids so that it needs no stored state.

The relay publishes long after the handler that caused a message ran, so the
context cannot come from a live span. It is derived instead: an order's
correlation id is the trace id (all hops of one order share one trace), a
message's own key is its span id, and its cause's key is its parent span id.
The context rides in the envelope (`Envelope.trace`), so it survives retries,
parking, redrive and both transports unchanged; it is also set as the
`traceparent` / `tracestate` headers of a message sent on its own over AMQP.

A message's key is its message id, but a command's is its tracking name
(`command:<id>`), the causation id that the events it causes record.
The cause's span id travels in `tracestate` under `saga`, as W3C allows; a cause
that is no message (a saga deadline) names no parent.

Every span named that way is exported, when a tracer provider is installed:
- the relay starts a PRODUCER span per envelope it publishes (`publishing`),
  with the ids the envelope names, a child of its cause's;
- a consumer handles each delivery inside a CONSUMER span (`handling`), a child
  of the message's PRODUCER span;
- the API starts a PRODUCER span for each command it sends, in the request's
  trace; `CommandRoots` mirrors it as the root of the order's trace, with the
  ids the command's events name as their cause and a link to the API's span.
The ids are kept by the provider of `tracer_provider()` (see
`infra.observability.trace_provider`); `configure_tracing()` installs it, with
SQL spans, exporting over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
Without it nothing is recorded, and the spans are skipped entirely.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from commands.contract.messages import Envelope

log = logging.getLogger(__name__)

VERSION = "00"
SAMPLED = "01"
STATE_KEY = "saga"
COMMAND_KEY = "command:"
MESSAGE_ID = "messaging.message.id"
CORRELATION_ID = "saga.correlation_id"

_propagator = TraceContextTextMapPropagator()
_handed: ContextVar[tuple[int, int] | None] = ContextVar("handed_ids", default=None)


def _hex(text: str, digits: int) -> str:
    value = hashlib.sha256(text.encode()).hexdigest()[:digits]
    # W3C forbids an all-zero id; a hash lands there once in 2**64.
    return value if value.strip("0") else "1".rjust(digits, "0")


def trace_id_of(correlation_id: UUID | None, message_id: str) -> str:
    """The order's UUID as the trace id; a message of no order is a trace of its own."""
    if correlation_id is not None and correlation_id.int:
        return correlation_id.hex
    return _hex(message_id, 32)


def span_id_of(key: str) -> str:
    """The span id of the message whose key (or a causation id naming it) is `key`."""
    return _hex(key, 16)


def span_key(envelope: Envelope) -> str:
    """What the messages this one causes will name as their cause."""
    return _span_key(envelope.kind, envelope.message_id, envelope.payload)


def _span_key(kind: str, message_id: str, payload: Mapping[str, Any]) -> str:
    command_id = payload.get("command_id") if kind == "command" else None
    return f"{COMMAND_KEY}{command_id}" if command_id else message_id


def names_a_message(cause: str) -> bool:
    """Whether `cause` is a message's key (`<source>:<position>`, `command:<id>`), whose span is exported."""
    source, _, position = cause.partition(":")
    return cause.startswith(COMMAND_KEY) or (position.isdigit() and bool(source))


def trace_context_for(envelope: Envelope, cause: str | None = None) -> dict[str, str]:
    """W3C `traceparent` (and `tracestate` naming the cause's span) for `envelope`.

    `cause` defaults to the envelope's causation id. A message of no order (a product's
    listing) starts a trace of its own, so its cause, whose span is in no such trace, is no parent.
    """
    return _trace_context(envelope.kind, envelope.message_id, envelope.payload, envelope.correlation_id,
                          envelope.causation_id if cause is None else cause)


def _trace_context(
    kind: str, message_id: str, payload: Mapping[str, Any], correlation_id: UUID | None, cause: str | None
) -> dict[str, str]:
    key = _span_key(kind, message_id, payload)
    trace_id = trace_id_of(correlation_id, message_id)
    context = {"traceparent": f"{VERSION}-{trace_id}-{span_id_of(key)}-{SAMPLED}"}
    of_an_order = correlation_id is not None and correlation_id.int != 0
    if of_an_order and cause and cause not in (key, message_id) and names_a_message(cause):
        context["tracestate"] = f"{STATE_KEY}={span_id_of(cause)}"
    return context


def traced_envelope(*, cause: str | None = None, **fields: Any) -> Envelope:
    """The envelope of these fields with the trace context `trace_context_for` gives it, built at once:
    the relay makes one per message it publishes, and building one, then copying it to add its trace,
    cost a third more."""
    correlation_id = fields.get("correlation_id")
    if correlation_id is not None and not isinstance(correlation_id, UUID):
        correlation_id = fields["correlation_id"] = UUID(str(correlation_id))
    causation_id = fields.get("causation_id")
    fields["trace"] = _trace_context(fields["kind"], fields["message_id"], fields["payload"], correlation_id,
                                     causation_id if cause is None else cause)
    return Envelope(**fields)


def ids_of(trace_context: Mapping[str, str]) -> tuple[int, int]:
    """The trace id and span id a `traceparent` names."""
    _, trace_id, span_id, _ = trace_context["traceparent"].split("-")
    return int(trace_id, 16), int(span_id, 16)


def parent_span_id(trace_context: Mapping[str, str]) -> str | None:
    """The span id of the message's cause, if it has one."""
    for entry in trace_context.get("tracestate", "").split(","):
        name, _, value = entry.strip().partition("=")
        if name == STATE_KEY:
            return value
    return None


def extract(trace_context: Mapping[str, str] | None) -> Context | None:
    """The remote context a consumer's span continues, or None when the message carries none."""
    if not trace_context:
        return None
    return _propagator.extract(dict(trace_context))


def recording() -> bool:
    """Whether a tracer provider is installed; without one, consumers skip even the extraction."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _attributes(envelope: Envelope) -> dict[str, str]:
    return {
        MESSAGE_ID: envelope.message_id,
        "messaging.destination.name": envelope.routing_key,
        "saga.message_kind": envelope.kind,
        "saga.causation_id": envelope.causation_id or "",
        CORRELATION_ID: str(envelope.correlation_id or ""),
    }


def _tracer() -> trace.Tracer:
    # Looked up per span, not cached: a provider installed later (or by a test) takes effect.
    return trace.get_tracer("saga-shop")


@contextmanager
def _span(envelope: Envelope) -> Iterator[Any]:
    with _tracer().start_as_current_span(
        f"handle {envelope.type}", context=extract(envelope.trace),
        kind=SpanKind.CONSUMER, attributes=_attributes(envelope),
    ) as span:
        yield span


def handling(envelope: Envelope | None) -> Any:
    """A consumer span around handling `envelope`, or nothing when tracing is off."""
    if envelope is None or not recording():
        return nullcontext()
    return _span(envelope)


class DerivedIds(RandomIdGenerator):
    """The id generator of a traced process: random ids, but for a span started inside `derived_ids`."""

    def generate_trace_id(self) -> int:
        handed = _handed.get()
        return handed[0] if handed else super().generate_trace_id()

    def generate_span_id(self) -> int:
        handed = _handed.get()
        return handed[1] if handed else super().generate_span_id()


@contextmanager
def derived_ids(trace_id: int, span_id: int) -> Iterator[None]:
    """The span started in this block takes these ids (its trace id only if it is a root)."""
    token = _handed.set((trace_id, span_id))
    try:
        yield
    finally:
        _handed.reset(token)


def _producer_span(envelope: Envelope) -> trace.Span:
    assert envelope.trace is not None
    trace_id, span_id = ids_of(envelope.trace)
    cause = parent_span_id(envelope.trace)
    parent = Context() if cause is None else trace.set_span_in_context(NonRecordingSpan(SpanContext(
        trace_id, int(cause, 16), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
    with derived_ids(trace_id, span_id):
        return _tracer().start_span(f"publish {envelope.type}", context=parent, kind=SpanKind.PRODUCER,
                                    attributes=_attributes(envelope))


@contextmanager
def publishing(envelopes: Sequence[Envelope]) -> Iterator[None]:
    """A PRODUCER span per envelope, with the ids its trace context names, around publishing them.

    Nothing when tracing is off. A window published again after a failure exports its spans again.
    """
    if not recording():
        yield
        return
    with ExitStack() as spans:
        for envelope in envelopes:
            if envelope.trace:
                spans.enter_context(trace.use_span(_producer_span(envelope), end_on_exit=True))
        yield


def configure_tracing(service_name: str = "saga-shop") -> bool:
    """Export spans over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; True if it does."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-http "
                    "is not installed; spans are not exported")
        return False
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from infra.observability.trace_provider import instrument_sql, tracer_provider

    provider = tracer_provider(service_name)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    instrument_sql()
    return True

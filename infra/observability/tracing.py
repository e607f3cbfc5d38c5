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
The cause's span id travels in `tracestate` under `saga`, as W3C allows.

Consumers start one span per delivery, a child of the message's span. Nothing
is recorded or exported unless a tracer provider is installed:
`configure_tracing()` installs one that exports over OTLP/HTTP when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any
from uuid import UUID

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from commands.contract.messages import Envelope

log = logging.getLogger(__name__)

VERSION = "00"
SAMPLED = "01"
STATE_KEY = "saga"

_propagator = TraceContextTextMapPropagator()


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
    command_id = envelope.payload.get("command_id") if envelope.kind == "command" else None
    return f"command:{command_id}" if command_id else envelope.message_id


def trace_context_for(envelope: Envelope, cause: str | None = None) -> dict[str, str]:
    """W3C `traceparent` (and `tracestate` naming the cause's span) for `envelope`.

    `cause` defaults to the envelope's causation id.
    """
    key = span_key(envelope)
    cause = envelope.causation_id if cause is None else cause
    trace_id = trace_id_of(envelope.correlation_id, envelope.message_id)
    context = {"traceparent": f"{VERSION}-{trace_id}-{span_id_of(key)}-{SAMPLED}"}
    if cause and cause not in (key, envelope.message_id):
        context["tracestate"] = f"{STATE_KEY}={span_id_of(cause)}"
    return context


def traced(envelope: Envelope, cause: str | None = None) -> Envelope:
    return envelope.model_copy(update={"trace": trace_context_for(envelope, cause)})


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


@contextmanager
def _span(envelope: Envelope) -> Iterator[Any]:
    attributes = {
        "messaging.message.id": envelope.message_id,
        "messaging.destination.name": envelope.routing_key,
        "saga.message_kind": envelope.kind,
        "saga.causation_id": envelope.causation_id or "",
        "saga.correlation_id": str(envelope.correlation_id or ""),
    }
    # Looked up per span, not cached: a provider installed later (or by a test) takes effect.
    with trace.get_tracer("saga-shop").start_as_current_span(
        f"handle {envelope.type}", context=extract(envelope.trace),
        kind=trace.SpanKind.CONSUMER, attributes=attributes,
    ) as span:
        yield span


def handling(envelope: Envelope | None) -> Any:
    """A consumer span around handling `envelope`, or nothing when tracing is off."""
    if envelope is None or not recording():
        return nullcontext()
    return _span(envelope)


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
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True

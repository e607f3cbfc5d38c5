"""The spans the code under test exports, caught in memory for the test to read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from infra.observability.trace_provider import tracer_provider


@contextmanager
def exported_spans(provider: TracerProvider | None = None) -> Iterator[InMemorySpanExporter]:
    """Install `provider` (by default the one `saga serve` installs) with an exporter in memory."""
    exporter = InMemorySpanExporter()
    provider = provider or tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_global_provider()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        _reset_global_provider()


def _reset_global_provider() -> None:
    # The API lets a process set its provider once; a test installs its own and takes it away again.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None

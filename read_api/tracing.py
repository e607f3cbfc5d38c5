"""What the API adds to a trace: a span per request, and a span per command it sends.

The request's span is OpenTelemetry's ASGI middleware's (health, readiness and
metrics are left out), run only while a tracer provider is installed: without
one it would build a span that records nothing, at a cost on every request.
A command's span is a PRODUCER span in the request's trace whose
`messaging.message.id` is the command's key (`command:<id>`), the cause its
events record, and whose `saga.correlation_id` is its order: from
these the tracer provider of `infra.observability` starts the order's own trace
with a link back to the request. Nothing is recorded without a provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from commands.command import Command
from commands.orders import PlaceOrder, RequestCancellation
from read_api.write_side import WriteSide

UNTRACED_PATHS = "healthz,readyz,metrics,api/v1/health"


def trace_requests(api: FastAPI) -> None:
    """A server span around each request; added last, so that it wraps the other middleware."""
    api.add_middleware(TracedWhileRecorded)


class TracedWhileRecorded:
    """OpenTelemetry's ASGI middleware while a tracer provider is installed; the app itself otherwise.

    The provider is looked up on each request, so one installed after the app
    was built (an exporter configured later, a test's) is used from then on.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.untraced = app
        # Named `app`: FastAPI finds OpenTelemetry's middleware in its stack and adds no spans of its own.
        self.app = OpenTelemetryMiddleware(
            app, excluded_urls=UNTRACED_PATHS, exclude_spans=["receive", "send"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        provider = trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            await self.untraced(scope, receive, send)
        else:
            await self.app(scope, receive, send)


@contextmanager
def sending(command: Command, order_id: UUID | None) -> Iterator[None]:
    """A span around sending `command` about `order_id`."""
    attributes = {
        "messaging.message.id": command.tracking_name,
        "saga.message_kind": "command",
        "saga.correlation_id": str(order_id or ""),
    }
    with trace.get_tracer("saga-shop.api").start_as_current_span(
        f"send {type(command).__name__}", kind=trace.SpanKind.PRODUCER, attributes=attributes,
    ):
        yield


class TracedWriteSide(WriteSide):
    """The write side, each command it sends inside its span."""

    async def place_order(self, command: PlaceOrder) -> UUID:
        with sending(command, command.order_id):
            return await super().place_order(command)

    async def request_cancellation(self, command: RequestCancellation) -> int:
        with sending(command, command.order_id):
            return await super().request_cancellation(command)

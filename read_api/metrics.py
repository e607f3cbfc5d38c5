"""Prometheus metrics of the API: HTTP requests and their latency, GraphQL operations.

Each app has its own registry, so several apps in one process (tests, a worker
beside the API) never collide on a metric name, and `/metrics` shows this app's.
The process's own metrics (consumers, relays), kept in a registry of the
process's, are served beside this app's. Labels are bounded: routes are their
templates (`/api/v1/orders/{id}`), not the paths requested, and an operation
name a client chose is kept only when it looks like a name and is one of the
first OPERATION_NAMES names of operations that ran; any other is "other".
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
OPERATION_NAMES = 50
"""Distinct operation names kept as label values: a client's own queries fit, a flood of names does not."""
OTHER = "other"


class Metrics:
    def __init__(self, process: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry()
        self.process = process
        self.http_requests = Counter(
            "http_requests_total", "HTTP requests answered", ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"],
            registry=self.registry,
        )
        self.graphql_operations = Counter(
            "graphql_operations_total", "GraphQL operations run", ["type", "name", "outcome"],
            registry=self.registry,
        )
        self.graphql_latency = Histogram(
            "graphql_operation_duration_seconds", "Time to run a GraphQL operation", ["type"],
            registry=self.registry,
        )
        self.operation_names = OperationNames(OPERATION_NAMES)

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        body = generate_latest(self.registry)
        if self.process is not None:
            body += generate_latest(self.process)
        return body, CONTENT_TYPE_LATEST

    def graphql_extension(self) -> Callable[[], SchemaExtension]:
        """A factory of the schema extension that counts operations; one extension per operation."""
        return lambda: _OperationMetrics(self)


class _OperationMetrics(SchemaExtension):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except Exception:  # a document that did not parse has no operation type
            kind = "unknown"
        result = context.result
        failed = bool(context.pre_execution_errors) or bool(result is not None and result.errors)
        # A name is kept only for an operation that ran: refused documents cannot claim the places.
        name = self.metrics.operation_names.label(context.operation_name or "anonymous", keep=not failed)
        self.metrics.graphql_operations.labels(kind, name, "error" if failed else "ok").inc()
        self.metrics.graphql_latency.labels(kind).observe(time.perf_counter() - started)


class OperationNames:
    """The operation names used as label values: at most `limit` of them, first come, the rest "other"."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: set[str] = set()
        self._lock = threading.Lock()

    def label(self, name: str, *, keep: bool = True) -> str:
        """`name` if it is kept (or, with `keep`, may be kept now), else "other"."""
        if name in self._kept:
            return name
        if not keep or not _NAME.match(name):
            return OTHER
        with self._lock:
            if len(self._kept) >= self.limit:
                return OTHER
            self._kept.add(name)
        return name


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = _route_of(scope)
            self.metrics.http_requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.http_latency.labels(scope["method"], route).observe(time.perf_counter() - started)


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"

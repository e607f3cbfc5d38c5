"""The FastAPI application, and the small health app each worker role serves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry
from starlette.routing import Route, WebSocketRoute

from projections.read_model import ReadModel
from read_api.answer_cache import AnswerCache, Freshness
from read_api.graphql_guard import FieldGuard
from read_api.graphql_limits import MAX_ALIASES, MAX_DEPTH, MAX_FIELDS, MAX_TOKENS
from read_api.guard import ClosedRouteError, RouteGuard, closed_route_refused, closed_unless_listed
from read_api.health import UNAVAILABLE, Outages, down_parts, merged
from read_api.ide import GraphiQLView, add_documentation_routes
from read_api.identity import Authenticator
from read_api.limits import BodyLimitMiddleware
from read_api.metrics import Metrics, MetricsMiddleware
from read_api.ports import ApiSettings, DeadLetterDesk, ReadyCheck, WriteSystem
from read_api.quota import PER_CLIENT, PER_CONNECTION, SubscriptionQuota
from read_api.rest import install_rest_errors, rest_router
from read_api.rest_envelope import fresh_request_id
from read_api.schema import build_schema
from read_api.services import Services
from read_api.tracing import TracedWriteSide, trace_requests

__all__ = ["ApiLimits", "ReadyCheck", "create_app", "create_health_app"]

PROJECTIONS_PROBE_SECONDS = 3.0
NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""FastAPI's own OpenTelemetry is off: a request's span is `tracing`'s, its figures Prometheus's."""
DASHBOARD = Path(__file__).with_name("dashboard.html")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class ApiLimits:
    max_body_bytes: int = 1 << 20
    max_depth: int = MAX_DEPTH
    max_tokens: int = MAX_TOKENS
    max_aliases: int = MAX_ALIASES
    max_fields: int = MAX_FIELDS
    read_your_writes_timeout: float = 1.0
    """How long a mutation waits for the projection to show what it wrote before answering from the store."""
    subscriptions_per_connection: int = PER_CONNECTION
    subscriptions_per_client: int = PER_CLIENT


async def _always_ready() -> dict[str, Any]:
    return {"status": "ok"}


def create_app(
    *,
    ready: ReadyCheck = _always_ready,
    system: WriteSystem | None = None,
    read_model: ReadModel | None = None,
    bus: DeadLetterDesk | None = None,
    settings: ApiSettings | None = None,
    limits: ApiLimits = ApiLimits(),
    lifespan: Lifespan | None = None,
    registry: CollectorRegistry | None = None,
    freshness: Freshness | None = None,
) -> FastAPI:
    """Build the API: GraphQL at /graphql, the dashboard, the old REST routes, health, readiness and metrics.

    `system` receives the mutations' commands and answers audits; `read_model`
    answers queries; `bus` lists and re-drives parked messages; `settings`
    say who is trusted (AUTH_MODE, the token keys, ADMIN_TOKEN) and whether
    introspection is on: a request passes the permission layer first. Without
    a system and a read model only health, readiness and metrics are served.
    `ready` reports whether the stores and the broker answer; readiness adds
    whether the projections do. `lifespan` runs what the process does beside
    serving (its consumers, relays, projector);
    `registry` holds that work's metrics, served at /metrics beside the API's.
    With `freshness` (where the read model stands), answers of `order` and
    `orders` are kept while it does not move (see `answer_cache`).
    """
    if (system is None) != (read_model is None):
        raise ValueError("the API needs both a system and a read model, or neither")
    metrics = Metrics(registry)
    authenticator = Authenticator() if settings is None else Authenticator.from_settings(settings)
    introspection = introspection_on(settings, authenticator)
    api = FastAPI(title="Saga shop", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  dependencies=[Depends(closed_unless_listed)], telemetry=NO_NATIVE_TELEMETRY)
    add_documentation_routes(api)
    api.add_exception_handler(ClosedRouteError, closed_route_refused)
    add_health_routes(api, _with_projections(ready, read_model))
    api.add_api_route("/metrics", _metrics_endpoint(metrics), methods=["GET"], include_in_schema=False)
    if system is not None and read_model is not None:
        services = Services(
            read_model=read_model, write=TracedWriteSide(system, bus),
            authenticator=authenticator, read_your_writes_timeout=limits.read_your_writes_timeout,
            subscriptions=SubscriptionQuota(
                per_connection=limits.subscriptions_per_connection,
                per_client=limits.subscriptions_per_client,
            ),
        )
        schema = build_schema(
            extensions=[metrics.graphql_extension(), FieldGuard],
            introspection=introspection,
            max_depth=limits.max_depth, max_tokens=limits.max_tokens,
            max_aliases=limits.max_aliases, max_fields=limits.max_fields,
        )

        graphql = GraphiQLView(
            schema, services=services, graphql_ide="graphiql" if introspection else None,
            # Strawberry's own bound, a backstop above the quota that refuses with a code.
            max_subscriptions_per_connection=services.subscriptions.per_connection + 2,
        )
        # First of the routes, which are tried in turn: most requests are GraphQL's.
        api.router.routes[:0] = [Route("/graphql", graphql, methods=["GET", "POST"], include_in_schema=False),
                                 WebSocketRoute("/graphql", graphql)]
        api.include_router(rest_router(services))
        install_rest_errors(api)
        add_dashboard_routes(api)
    if freshness is not None and read_model is not None:  # inside the guard: it runs after the guard decided
        api.add_middleware(AnswerCache, freshness=freshness)
    api.add_middleware(RouteGuard, authenticator=authenticator, documentation=introspection)
    api.add_middleware(BodyLimitMiddleware, max_body_bytes=limits.max_body_bytes)
    api.add_middleware(MetricsMiddleware, metrics=metrics)
    trace_requests(api)
    return api


def introspection_on(settings: ApiSettings | None, authenticator: Authenticator) -> bool:
    """GRAPHQL_INTROSPECTION when set; else on where every caller is trusted, off where tokens are needed."""
    chosen = None if settings is None else settings.graphql_introspection
    return authenticator.trusts_everyone if chosen is None else chosen


def create_health_app(
    role: str, ready: ReadyCheck, *, lifespan: Lifespan | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """What a worker role serves on its own port: its health for probes, and its metrics at /metrics."""
    api = FastAPI(title=f"Saga shop {role} worker", version="0.1.0", lifespan=lifespan, docs_url=None,
                  redoc_url=None, telemetry=NO_NATIVE_TELEMETRY)
    add_documentation_routes(api)
    add_health_routes(api, ready, role=role)
    metrics = Metrics(registry)
    api.add_api_route("/metrics", _metrics_endpoint(metrics), methods=["GET"], include_in_schema=False)
    api.add_middleware(MetricsMiddleware, metrics=metrics)
    return api


def _metrics_endpoint(metrics: Metrics) -> Any:
    async def exposition() -> Response:
        """Prometheus metrics in the text format."""
        # Collecting reads the relays' positions from their stores: not on the event loop.
        body, content_type = await asyncio.to_thread(metrics.exposition)
        return Response(body, media_type=content_type)

    return exposition


def _with_projections(ready: ReadyCheck, read_model: ReadModel | None) -> ReadyCheck:
    """Readiness including the read model: without the projections the API cannot answer queries."""
    if read_model is None:
        return ready

    outages = Outages()

    async def check() -> dict[str, Any]:
        try:
            statuses = await asyncio.wait_for(read_model.projection_status(), PROJECTIONS_PROBE_SECONDS)
        except Exception as error:
            outages.failed("projections", error)
            unreachable = {"status": UNAVAILABLE, "down": ["projections"], "projections": "unreachable"}
            return merged(await ready(), unreachable)
        outages.answered("projections")
        lags = {s.name: {"position": s.position, "lag": s.lag} for s in statuses}
        return merged(await ready(), {"status": "ok", "projections": lags})

    return check


def add_dashboard_routes(api: FastAPI) -> None:
    """The saga dashboard at /dashboard, and / sending people there: one page that talks to /graphql."""
    page = DASHBOARD.read_text(encoding="utf-8")

    @api.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    @api.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/dashboard", status_code=307)


def add_health_routes(api: FastAPI, ready: ReadyCheck, *, role: str = "api") -> None:
    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready: the event store, the broker and (for the API) the projections answer.

        The api and the relay add `waiting_for`, the roles nobody runs for the queues they publish to;
        they are ready all the same.
        """
        report = await ready()
        return JSONResponse(report, status_code=200 if report.get("status") == "ok" else 503)

    @api.get("/api/v1/health")
    async def health(request: Request) -> JSONResponse:
        """The old system's health endpoint, with its envelope."""
        report = await ready()
        healthy = report.get("status") == "ok"
        body = {
            "success": healthy,
            "message": f"{role} is {'healthy' if healthy else 'unhealthy'}",
            "data": {"service": role, **report},
            "error": None if healthy else {"code": "UNHEALTHY", "message": f"down: {down_parts(report)}",
                                           "details": None},
            "timestamp": datetime.now(UTC).isoformat(),
            "request_id": fresh_request_id(request.headers.get("x-request-id")),
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

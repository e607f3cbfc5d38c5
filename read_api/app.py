"""The FastAPI application, and the small health app each worker role serves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

ReadyCheck = Callable[[], Awaitable[dict[str, Any]]]


async def _always_ready() -> dict[str, Any]:
    return {"status": "ok"}


def create_app(*, ready: ReadyCheck = _always_ready) -> FastAPI:
    """Build the API. `ready` reports whether the stores and the broker behind it answer."""
    api = FastAPI(title="Saga shop", version="0.1.0")
    add_health_routes(api, ready)
    return api


def create_health_app(role: str, ready: ReadyCheck) -> FastAPI:
    """What a worker role serves on its own port: its health, for probes and load balancers."""
    api = FastAPI(title=f"Saga shop {role} worker", version="0.1.0")
    add_health_routes(api, ready, role=role)
    return api


def add_health_routes(api: FastAPI, ready: ReadyCheck, *, role: str = "api") -> None:
    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready: the event store and the broker answer."""
        report = await ready()
        return JSONResponse(report, status_code=200 if report.get("status") == "ok" else 503)

    @api.get("/api/v1/health")
    async def health() -> JSONResponse:
        """The old system's health endpoint, with its envelope."""
        report = await ready()
        healthy = report.get("status") == "ok"
        body = {
            "success": healthy,
            "message": f"{role} is {'healthy' if healthy else 'unhealthy'}",
            "data": {"service": role, **report},
            "error": None if healthy else {"code": "UNHEALTHY", "message": str(report), "details": None},
            "timestamp": datetime.now(UTC).isoformat(),
            "request_id": None,
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

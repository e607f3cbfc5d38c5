"""The FastAPI application."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse


def create_app(*, ready: Callable[[], dict[str, Any]] | None = None) -> FastAPI:
    """Build the API. `ready` reports whether the stores behind it answer."""
    api = FastAPI(title="Saga shop", version="0.1.0")

    @api.get("/healthz")
    def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @api.get("/readyz")
    def readyz() -> JSONResponse:
        """Ready: the event store answers."""
        report = ready() if ready else {"status": "ok"}
        code = 200 if report.get("status") == "ok" else 503
        return JSONResponse(report, status_code=code)

    return api

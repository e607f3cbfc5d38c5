"""The permission layer at the HTTP door: every request is checked against `permissions.ROUTES`.

The caller's credential is verified once per request, here, and its `Access`
is left in the request's state for the routes and the GraphQL context to read.
A request whose path and method no rule lists is refused 403 by `closed_unless_listed`,
a dependency of every FastAPI route of the app and the first thing the GraphQL
view (`graphql_guard.GuardedGraphQL`, a route of its own) does, before the route
does anything: a new route is closed until `permissions.ROUTES` opens it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fastapi import WebSocketException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from read_api.identity import Authenticator
from read_api.limits import refusal
from read_api.permissions import (
    DOCUMENTATION_ROUTES,
    FORBIDDEN,
    ROUTES,
    Access,
    AccessDeniedError,
    ForbiddenError,
    UnauthenticatedError,
)

STATUS = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403}
CHECKED = "route_checked"


def _patterns(routes: Iterable[tuple[str, str]]) -> list[tuple[str, re.Pattern[str], str]]:
    return [(method, compile_path(path)[0], path) for method, path in routes]


class RouteGuard:
    """ASGI middleware: refuses a request its caller may not make before any route runs."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, documentation: bool) -> None:
        self.app = app
        self.authenticator = authenticator
        self.documentation = documentation
        listed = [*ROUTES, *(("GET", path) for path in DOCUMENTATION_ROUTES)]
        self.patterns = _patterns(listed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        access = Access.of(self.authenticator.principal, _header(scope, b"authorization"))
        state = scope.setdefault("state", {})
        state["access"] = access
        method = "WEBSOCKET" if scope["type"] == "websocket" else scope["method"]
        template = self._template("GET" if method == "HEAD" else method, scope["path"])
        if template is not None:
            try:
                access.require_route(method, template, documentation=self.documentation)
            except AccessDeniedError as error:
                await self._refuse(scope, receive, send, error)
                return
            state[CHECKED] = True
        await self.app(scope, receive, send)

    def _template(self, method: str, path: str) -> str | None:
        for listed_method, pattern, template in self.patterns:
            if listed_method == method and pattern.match(path):
                return template
        return None

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, error: AccessDeniedError) -> None:
        status = STATUS[error.code]
        if scope["type"] == "websocket":
            await receive()  # the connect message; then refuse the handshake
            await send({"type": "websocket.close", "code": 4401 if status == 401 else 4403})
            return
        body = refusal(scope["path"], error.message, code=error.code,
                       request_id=_header(scope, b"x-request-id"))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if isinstance(error, UnauthenticatedError):
            headers.append((b"www-authenticate", b'Bearer realm="saga-shop"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class ClosedRouteError(ForbiddenError):
    """A route no rule of `permissions.ROUTES` opens."""


async def closed_unless_listed(connection: HTTPConnection) -> None:
    """A dependency of every route (the GraphQL view calls it itself): refuses what no rule opened."""
    if connection.scope.get("state", {}).get(CHECKED):
        return
    if connection.scope["type"] == "websocket":
        raise WebSocketException(code=4403, reason="Forbidden")
    raise ClosedRouteError(f"{connection.scope['method']} {connection.url.path} is not open to anyone")


async def closed_route_refused(request: Request, error: Exception) -> Response:
    """The answer to a ClosedRouteError, in the shape the client at that path reads."""
    message = error.message if isinstance(error, ForbiddenError) else "forbidden"
    body = refusal(request.url.path, message, code=FORBIDDEN, request_id=request.headers.get("x-request-id"))
    return Response(body, status_code=403,
                    media_type="application/json")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None

"""A bound on request bodies: an oversized one is answered 413 with a JSON reason, never read whole.

The body is read up to the limit before the app sees it (a declared
Content-Length over it is refused at once), so a client cannot make the server
buffer or parse an arbitrarily large document, with or without chunked encoding.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from read_api.errors import Problem
from read_api.rest_envelope import STATUS_OF_CODE, encode, error_document, fresh_request_id

PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        text = f"the request body exceeds {self.max_body_bytes} bytes"
        given = dict(scope["headers"]).get(b"x-request-id")
        body = refusal(scope["path"], text, request_id=None if given is None else given.decode("latin-1"))
        await send({
            "type": "http.response.start", "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        })
        await send({"type": "http.response.body", "body": body})


def refusal(
    path: str, message: str, *, code: str = PAYLOAD_TOO_LARGE, request_id: str | None = None,
) -> bytes:
    """A refusal's body in the shape the client at that path reads: GraphQL errors, or the REST envelope.

    `request_id` is the client's X-Request-ID, if it sent one; the envelope carries a new one otherwise.
    """
    if path.startswith("/graphql"):
        return json.dumps({"errors": [{"message": message, "extensions": {"code": code}}]}).encode()
    problem = Problem(code, message)
    return encode(error_document(problem, STATUS_OF_CODE.get(code, 400), fresh_request_id(request_id)))


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, handed to the app as one message; later messages (a disconnect) pass through."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed

"""Answers to `order(id)` and `orders(...)` kept while the read model has not moved.

An answer is kept under the caller's `Access` (as the permission layer decided it
for this request), the exact request body (document, variables, operation name)
and the `Accept` header, and only while every projection's position is the one
read before the answer was computed. A request seen before reads the positions first
(one small query, shared by the requests waiting together: see `freshness`):
a kept answer is served only if they have not moved since the request arrived,
so it is as fresh as reading the read model at that moment; any move forgets
every kept answer. The positions are read before the rows, so a kept answer
reflects those positions or later ones, never earlier. When they cannot be
read, the request is answered as if there were no cache, and nothing is kept.
Kept answers are bounded in number and in bytes (bodies and answers), so that
a caller varying its requests cannot grow the process without end.

An answer is kept only from a request's second sight: the first time a request
comes (by a hash of its key among the last SEEN requests) it is answered as if
there were no cache, with no reading of the positions and nothing kept. A
request that never comes again (most `order(id)` of a large shop) costs nothing
here and takes no room from the answers that are asked again.

Only an operation the GraphQL layer marks as reading the read model alone is
kept (a `Verdict`, allowed by `graphql_guard.FieldGuard`): a query whose
root fields are all in CACHEABLE_ROOTS, with no error, which no resolver marked
as reading elsewhere (an order too new for the
projection is read from the event store; `integrity` recomputes hash chains).
The cache sits behind the permission layer (`guard.RouteGuard` runs first and
decides the caller), so two callers share an answer only when that layer
decided they are the same caller.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from read_api.freshness import Freshness, SharedFreshness
from read_api.permissions import Access

__all__ = ["CACHEABLE_ROOTS", "AnswerCache", "Freshness", "Verdict", "verdict_of"]

CACHEABLE_ROOTS = frozenset({"order", "orders"})
"""Root fields whose answers come from the read model alone (but for the marked exceptions)."""
KEPT_ANSWERS = 4096
KEPT_BYTES = 32 << 20
"""Bodies and answers kept, in all: a caller varying its requests cannot grow a worker past this."""
VERDICT = "answer_cache.verdict"
MAX_KEPT_BODY = 64 << 10
"""Request bodies over this are never kept: a cache key is the whole body."""
SEEN = 16384
"""Requests remembered as seen (a hash of each one's key): one seen before has its answer kept."""


@dataclass
class Verdict:
    """Whether this request's answer may be kept; the GraphQL layer decides, resolvers can veto."""

    cacheable: bool = False
    vetoed: bool = False

    def allow(self) -> None:
        self.cacheable = True

    def veto(self) -> None:
        """This answer read something besides the read model: it is never kept."""
        self.vetoed = True

    @property
    def keep(self) -> bool:
        return self.cacheable and not self.vetoed


def verdict_of(scope: Scope | None) -> Verdict | None:
    state = None if scope is None else scope.get("state")
    found = None if state is None else state.get(VERDICT)
    return found if isinstance(found, Verdict) else None


@dataclass(frozen=True)
class Kept:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class AnswerCache:
    """ASGI middleware for POST /graphql, placed inside the permission layer's `RouteGuard`."""

    def __init__(self, app: ASGIApp, *, freshness: Freshness, path: str = "/graphql",
                 size: int = KEPT_ANSWERS, max_bytes: int = KEPT_BYTES, seen: int = SEEN) -> None:
        self.app = app
        self.freshness = SharedFreshness(freshness)
        self.path = path
        self.size = size
        self.max_bytes = max_bytes
        self._at: Hashable = None
        self._kept: OrderedDict[Hashable, Kept] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._bytes = 0
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._seen_size = seen
        self.hits = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state") or {}
        access = state.get("access")
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path
                or not isinstance(access, Access)):
            await self.app(scope, receive, send)
            return
        body, more = await _body(receive)
        if more or len(body) > MAX_KEPT_BODY:
            await self.app(scope, _replay(body, more, receive), send)
            return
        key = (access, _header(scope, b"accept"), _header(scope, b"content-type"), body)
        if not self._seen_before(key) and key not in self._kept:
            await self.app(scope, _replay(body, False, receive), send)  # its first sight: answered uncached
            return
        try:
            at = await self.freshness()
        except Exception:  # the read store is down: answered uncached, the app names the failure as usual
            await self.app(scope, _replay(body, False, receive), send)
            return
        if at != self._at:
            self._kept.clear()
            self._sizes.clear()
            self._bytes = 0
            self._at = at
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            self.hits += 1
            await _answer(send, kept)
            return
        verdict = state[VERDICT] = Verdict()
        answer = await _recorded(self.app, scope, _replay(body, False, receive), send)
        if answer is not None and verdict.keep and at == self._at and answer.status == 200 \
                and b'"errors"' not in answer.body:
            self._keep(key, answer, len(body) + len(answer.body))

    def _seen_before(self, key: Hashable) -> bool:
        """Whether a request with this key came before, among the last SEEN; notes that it came now."""
        mark = hash(key)
        if mark in self._seen:
            self._seen.move_to_end(mark)
            return True
        self._seen[mark] = None
        if len(self._seen) > self._seen_size:
            self._seen.popitem(last=False)
        return False

    def _keep(self, key: Hashable, answer: Kept, size: int) -> None:
        """Keep `answer`, forgetting the least recently used while over KEPT_ANSWERS or KEPT_BYTES."""
        self._bytes += size - self._sizes.get(key, 0)  # two requests alike may both have missed it
        self._kept[key] = answer
        self._sizes[key] = size
        while len(self._kept) > self.size or self._bytes > self.max_bytes:
            oldest, _ = self._kept.popitem(last=False)
            self._bytes -= self._sizes.pop(oldest)


def _header(scope: Scope, name: bytes) -> bytes:
    return next((value for key, value in scope["headers"] if key == name), b"")


async def _body(receive: Receive) -> tuple[bytes, bool]:
    """The request body if it arrives within MAX_KEPT_BODY; `more` when reading stopped before its end."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > MAX_KEPT_BODY:
            return b"".join(chunks), True


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """The body already read, then whatever the client still sends."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": more}

    return again


async def _recorded(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> Kept | None:
    """Run the app, sending its answer on, and return it when it came in one piece."""
    start: Message | None = None
    chunks: list[bytes] = []
    whole = True

    async def noting(message: Message) -> None:
        nonlocal start, whole
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
        else:
            whole = False
        await send(message)

    await app(scope, receive, noting)
    if start is None or not whole:
        return None
    return Kept(start["status"], list(start.get("headers", [])), b"".join(chunks))


async def _answer(send: Send, kept: Kept) -> None:
    await send({"type": "http.response.start", "status": kept.status, "headers": kept.headers})
    await send({"type": "http.response.body", "body": kept.body})

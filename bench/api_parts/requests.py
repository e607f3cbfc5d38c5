"""What each load client sends and what it must get back: every request's bytes built once, and the
answer's bytes learned once per order id, from one request whose JSON was checked.

A load client then only compares bytes: an answer is right when its status is 200 and its body is
the very body learned for that order id, so any wrong, short or errored answer is an error.

A fresh request is the same request with one more member in its body, `"extensions": {"request":
"<number>"}`, numbered per request with a fixed width, so that its bytes are two parts built once
around the number, and its Content-Length does not change. The API keeps an answer under the whole
request body (read_api/answer_cache.py), so no kept answer serves a fresh request; the query text
is the one a kept request sends, so its parse and validation are the cached ones, as for a client
asking with a query document it has sent before. Its answer is compared with the body learned from
the plain request: the extensions member does not change what is answered.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

from bench.api_parts.config import ORDER, ORDERS, PAGE_Q, PAGE_SIZE, RunFailed
from bench.api_parts.shop import Shop


@dataclass(frozen=True)
class ClientPlan:
    """Load client `index`: the requests it may send, each beside the body its answer must have."""

    index: int
    requests: list[bytes]
    expected: list[bytes]
    keys: list[str]
    """What each request asks for: an order id, or the page."""
    fresh: list[tuple[bytes, bytes]] | None = None
    """When each request is to be unique: the bytes of each before and after its number (FRESH_DIGITS)."""


FRESH_DIGITS = 18
FRESH_NUMBER = b"%0" + str(FRESH_DIGITS).encode() + b"d"


def http_request(host: str, port: int, payload: dict[str, Any], token: str | None) -> bytes:
    """A whole HTTP/1.1 POST /graphql on a kept-alive connection, as bytes."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return http_head(host, port, len(body), token) + body


def fresh_request(host: str, port: int, payload: dict[str, Any], token: str | None) -> tuple[bytes, bytes]:
    """The same request with `"extensions": {"request": "<FRESH_DIGITS digits>"}`: the bytes around them."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    before, after = body[:-1] + b',"extensions":{"request":"', b'"}}'
    return http_head(host, port, len(before) + FRESH_DIGITS + len(after), token) + before, after


def http_head(host: str, port: int, length: int, token: str | None) -> bytes:
    head = ["POST /graphql HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {length}"]
    if token is not None:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def parse_response(buffer: bytes | bytearray) -> tuple[int, bytes, int] | None:
    """(status, body, bytes used) of the first whole answer in `buffer`, or None while it is partial.

    uvicorn sends these answers with a Content-Length; a chunked answer is read too.
    """
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower() + b"\r\n"
    status = int(head[9:12])
    start = head_end + 4
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        end = start + int(head[at + 17:head.index(b"\r\n", at + 2)])
        return (status, bytes(buffer[start:end]), end) if len(buffer) >= end else None
    if b"\r\ntransfer-encoding: chunked" in head:
        return _chunked(buffer, status, start)
    raise RunFailed(f"an answer with neither Content-Length nor chunks: {head[:300]!r}")


def _chunked(buffer: bytes | bytearray, status: int, at: int) -> tuple[int, bytes, int] | None:
    chunks: list[bytes] = []
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        if len(buffer) < line_end + 2 + size + 2:
            return None
        chunks.append(bytes(buffer[line_end + 2:line_end + 2 + size]))
        at = line_end + 2 + size + 2
        if size == 0:
            return status, b"".join(chunks), at


def client_plans(name: str, shop: Shop, clients: int, host: str, port: int,
                 tokens: list[str] | None, fresh: bool = False) -> list[ClientPlan]:
    """Each client's requests: order(id) of each order of its customer, or the one page; `fresh`, each
    also as the parts of a unique request."""
    plans = []
    for index in range(clients):
        token = None if tokens is None else tokens[index % len(tokens)]
        if name == PAGE_Q:
            keys = ["page"]
            payloads: list[dict[str, Any]] = [{"query": ORDERS, "variables": {"first": PAGE_SIZE}}]
        else:
            keys = shop.orders_of(index)
            payloads = [{"query": ORDER, "variables": {"id": order_id}} for order_id in keys]
        requests = [http_request(host, port, payload, token) for payload in payloads]
        parts = [fresh_request(host, port, payload, token) for payload in payloads] if fresh else None
        plans.append(ClientPlan(index, requests, [], keys, parts))
    return plans


def learn_answers(plans: list[ClientPlan], shop: Shop, host: str, port: int) -> list[ClientPlan]:
    """The plans with each request's expected body: one request per order id (or the page), checked."""
    learned: dict[str, bytes] = {}
    with socket.create_connection((host, port), timeout=30) as sock:
        for plan in plans:
            for key, request in zip(plan.keys, plan.requests, strict=True):
                if key not in learned:
                    status, body = exchange(sock, request)
                    if (problem := wrong(status, body, key, shop)) is not None:
                        raise RunFailed(f"the answer to learn for {key} is wrong ({problem}): {body[:300]!r}")
                    learned[key] = body
    return [ClientPlan(p.index, p.requests, [learned[k] for k in p.keys], p.keys, p.fresh) for p in plans]


def exchange(sock: socket.socket, request: bytes) -> tuple[int, bytes]:
    sock.sendall(request)
    buffer = bytearray()
    while (parsed := parse_response(buffer)) is None:
        data = sock.recv(1 << 16)
        if not data:
            raise RunFailed("the server closed the connection")
        buffer += data
    return parsed[0], parsed[1]


def wrong(status: int, body: bytes, key: str, shop: Shop | None) -> str | None:
    """What is wrong with an answer to the request for `key`, read as JSON; None if nothing."""
    if status != 200:
        return f"HTTP {status}"
    try:
        answer = json.loads(body)
    except ValueError:
        return "not JSON"
    if answer.get("errors"):
        return "GraphQL errors"
    data = answer.get("data") or {}
    if key == "page":
        edges = (data.get("orders") or {}).get("edges") or []
        return None if shop is None or len(edges) == min(PAGE_SIZE, shop.count) \
            else f"short page ({len(edges)} orders)"
    order = data.get("order")
    if not order:
        return "null order"
    return None if order["id"] == key else "another order"


def kind_of_error(status: int, body: bytes, key: str) -> str:
    """The kind of a wrong answer, for the report: what is wrong with it, or that it changed."""
    return wrong(status, body, key, None) or "another answer than the one learned"

"""A kept answer of `order(id)` is as fresh as the read model, and is never another caller's."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest
from starlette.types import Receive, Scope, Send

from infra.bootstrap import bootstrap
from infra.settings import Settings
from read_api.answer_cache import AnswerCache, verdict_of
from read_api.app import create_app
from read_api.identity import Principal, mint_token
from read_api.permissions import Access
from tests.api_harness import RowsReadModel, api_client, graphql, order_row

pytestmark = pytest.mark.unit

ORDER = "query($id: ID!) { order(id: $id) { id status customerId payment { status } } }"


class Positions:
    """Where the read model stands, moved by hand as a projection would move it; counts its readings."""

    def __init__(self) -> None:
        self.at = 1
        self.readings = 0

    async def __call__(self) -> int:
        self.readings += 1
        return self.at


def settings() -> Settings:
    return Settings(_env_file=None, database_url="memory://", auth_jwt_secret="k" * 48)


def bearer(config: Settings, customer: str) -> dict[str, str]:
    token = mint_token(config, subject=customer, scopes=["customer"], ttl=timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


async def test_an_order_moved_by_the_projection_is_answered_as_it_is_now_not_as_kept() -> None:
    config, rows, positions = settings(), RowsReadModel(), Positions()
    order = rows.add_order(order_row(status="PENDING"), fulfilled=True)
    with bootstrap(config) as system:
        app = create_app(system=system, read_model=rows, settings=config, freshness=positions)
        async with api_client(app) as http:
            headers = bearer(config, str(order.customer_id))
            ask = {"id": str(order.id)}
            first, again, third = [await graphql(http, ORDER, ask, headers) for _ in range(3)]
            # The first was seen once, the second kept, the third the kept answer.
            assert first == again == third and rows.calls["order_views"] == 2
            rows.orders_rows[order.id] = replace(order, status="COMPLETED", version=2)
            positions.at += 1  # the projection committed the row and its position together
            moved = await graphql(http, ORDER, {"id": str(order.id)}, headers)
    assert moved["data"]["order"]["status"] == "COMPLETED"


async def test_one_customers_kept_answer_is_never_given_to_another() -> None:
    config, rows = settings(), RowsReadModel()
    order = rows.add_order(order_row())
    with bootstrap(config) as system:
        app = create_app(system=system, read_model=rows, settings=config, freshness=Positions())
        async with api_client(app) as http:
            owner = await graphql(http, ORDER, {"id": str(order.id)}, bearer(config, str(order.customer_id)))
            other = await graphql(http, ORDER, {"id": str(order.id)}, bearer(config, str(uuid4())))
            anonymous = await graphql(http, ORDER, {"id": str(order.id)})
    assert owner["data"]["order"]["id"] == str(order.id)
    assert other["data"]["order"] is None
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_order_read_from_the_event_store_is_not_kept() -> None:
    config, rows, positions = settings(), RowsReadModel(), Positions()
    with bootstrap(config) as system:
        app = create_app(system=system, read_model=rows, settings=config, freshness=positions)
        async with api_client(app) as http:
            headers = bearer(config, str(uuid4()))
            missing = str(uuid4())
            for _ in range(3):
                await graphql(http, ORDER, {"id": missing}, headers)
    assert rows.calls["order_views"] == 3  # no answer was kept: the event store was asked


class Unreachable:
    """A read store that does not answer where it stands."""

    async def __call__(self) -> int:
        raise ConnectionError("the read store is down")


async def test_a_query_is_answered_as_usual_when_the_read_models_position_cannot_be_read() -> None:
    config, rows = settings(), RowsReadModel()
    order = rows.add_order(order_row(), fulfilled=True)
    with bootstrap(config) as system:
        app = create_app(system=system, read_model=rows, settings=config, freshness=Unreachable())
        async with api_client(app) as http:
            headers = bearer(config, str(order.customer_id))
            answers = [await graphql(http, ORDER, {"id": str(order.id)}, headers) for _ in range(3)]
    assert [answer["data"]["order"]["id"] for answer in answers] == [str(order.id)] * 3
    assert rows.calls["order_views"] == 3  # nothing was kept without knowing where the read model stood


class Answering:
    """An app whose every answer may be kept: `size` bytes, naming the request it answered."""

    def __init__(self, size: int) -> None:
        self.size, self.calls = size, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        request = (await receive())["body"]
        verdict = verdict_of(scope)  # none on a request's first sight: nothing will be kept
        if verdict is not None:
            verdict.allow()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": request.ljust(self.size, b" ")})


OPERATOR = Access(Principal(str(uuid4()), frozenset({"operator"})))


async def asked(cache: AnswerCache, body: bytes, access: Access = OPERATOR) -> bytes:
    sent: list[bytes] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message["body"])  # type: ignore[arg-type]

    scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": [], "state": {"access": access}}
    await cache(scope, receive, send)  # type: ignore[arg-type]
    return b"".join(sent)


async def test_many_differing_requests_keep_only_the_latest_answers_that_fit_their_bytes() -> None:
    app = Answering(size=1000)
    cache = AnswerCache(app, freshness=Positions(), max_bytes=10_000)
    for n in range(100):
        for _ in range(2):  # the second sight of a request keeps its answer
            assert (await asked(cache, f"query {n}".encode())).startswith(f"query {n}".encode())
    await asked(cache, b"query 99")
    assert app.calls == 200  # the latest answer was kept
    await asked(cache, b"query 0")
    assert app.calls == 201  # the first was forgotten: a hundred answers of 1,000 bytes do not fit


async def test_a_request_seen_once_reads_nothing_and_keeps_nothing() -> None:
    app, positions = Answering(size=100), Positions()
    cache = AnswerCache(app, freshness=positions, seen=10)
    await asked(cache, b"query once")
    assert (app.calls, positions.readings, cache.hits) == (1, 0, 0)  # answered as if there were no cache
    await asked(cache, b"query once")
    assert (app.calls, positions.readings, cache.hits) == (2, 1, 0)  # seen before: its answer kept
    await asked(cache, b"query once")
    assert (app.calls, positions.readings, cache.hits) == (2, 2, 1)  # the kept answer
    for n in range(10):
        await asked(cache, f"query {n}".encode())
    assert (app.calls, positions.readings) == (12, 2)  # ten requests seen once each
    positions.at += 1  # the read model moves: every kept answer is forgotten
    await asked(cache, b"query once")
    assert (app.calls, positions.readings, cache.hits) == (13, 3, 1)  # still known, kept again
    await asked(cache, b"query 0")
    assert (app.calls, positions.readings) == (14, 3)  # remembered among the last ten seen no more

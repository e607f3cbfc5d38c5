"""The GraphQL API over a read model of rows set by hand and an in-memory write side."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from enum import Enum
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import strawberry
from graphql import GraphQLField, GraphQLObjectType, GraphQLResolveInfo
from graphql.execution import executor as graphql_executor
from graphql.execution.collect_fields import collect_subfields
from strawberry.extensions import SchemaExtension

from commands.command import parse_command
from commands.inventory import SEED_CATALOGUE
from commands.orders import PlaceOrder
from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from read_api.app import ApiLimits, create_app
from read_api.execution import COLLECTIONS, LEAF, ExecutionContext, read_attributes_directly
from read_api.schema import Documents, PreparedDocuments, build_schema
from tests.api_harness import (
    ADMIN,
    ADMIN_TOKEN,
    T0,
    RowsReadModel,
    api_client,
    asgi_post,
    data_of,
    graphql,
    order_row,
)
from tests.fakes import listed_mouse
from tests.tokens import customer, operator, requiring_tokens

LIST = """
query List($first: Int, $after: String, $customer: ID) {
  orders(first: $first, after: $after, customerId: $customer) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id status totalAmount payment { status amount } shipment { trackingNumber }
                          saga { status steps { name status attempts } } } }
  }
}"""
RESTOCK = """mutation($id: ID!, $n: Int!) { restock(productId: $id, quantity: $n) {
  product { id onHand available } errors { code message field } } }"""
MOUSE = SEED_CATALOGUE[1].product_id


@pytest.fixture
def system() -> Iterator[System]:
    settings = Settings(_env_file=None, database_url="memory://", admin_token=ADMIN_TOKEN)
    with bootstrap(settings) as built:
        built.inventory.seed()
        yield built


@pytest.fixture
def read_model() -> RowsReadModel:
    return RowsReadModel()


@pytest.fixture
async def client(system: System, read_model: RowsReadModel) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(system=system, read_model=read_model, settings=system.settings,
                     limits=ApiLimits(max_body_bytes=64 * 1024))
    async with api_client(app) as http:
        yield http


def customers_orders(read_model: RowsReadModel, count: int, customer_id: UUID) -> list[UUID]:
    """`count` fulfilled orders of one customer, one a minute; returned newest first."""
    rows = [read_model.add_order(order_row(customer_id=customer_id, created_at=T0 + timedelta(minutes=i)),
                                 fulfilled=True) for i in range(count)]
    return [row.id for row in reversed(rows)]


async def test_listing_twenty_orders_reads_each_kind_of_row_once(
    client: httpx.AsyncClient, read_model: RowsReadModel
) -> None:
    customers_orders(read_model, 20, uuid4())

    data = await data_of(client, LIST, {"first": 20})

    nodes = [edge["node"] for edge in data["orders"]["edges"]]
    assert len(nodes) == 20
    assert all(n["payment"]["status"] == "COMPLETED" and n["saga"]["status"] == "COMPLETED" for n in nodes)
    assert all(n["shipment"]["trackingNumber"] == "TRK1" for n in nodes)
    assert read_model.calls == {"orders": 1, "count_orders": 1, "payments_by_order": 1,
                                "shipments_by_order": 1, "sagas_by_order": 1}


ORDER = """query($id: ID!) { order(id: $id) { id status payment { status } shipment { trackingNumber }
  saga { status } } }"""


async def test_an_order_is_read_with_its_payment_shipment_and_saga_in_one_call(
    client: httpx.AsyncClient, read_model: RowsReadModel
) -> None:
    [order_id] = customers_orders(read_model, 1, uuid4())

    order = (await data_of(client, ORDER, {"id": str(order_id)}))["order"]

    assert (order["payment"]["status"], order["shipment"]["trackingNumber"], order["saga"]["status"]) == (
        "COMPLETED", "TRK1", "COMPLETED")
    assert read_model.calls == {"order_views": 1}


async def test_an_answered_request_leaves_nothing_for_the_cycle_collector(
    system: System, read_model: RowsReadModel
) -> None:
    # A request's state in a reference cycle lives on until the cycle collector finds it: collecting
    # such garbage took about a fifth of the CPU of answering a fresh order(id). The app is called
    # as a server calls it, without an HTTP client (whose own objects hold cycles).
    app = create_app(system=system, read_model=read_model, settings=system.settings)
    order_id, *_ = customers_orders(read_model, 3, uuid4())
    requests = [(ORDER, {"id": str(order_id)}), (LIST, {"first": 3})]
    for query, variables in requests:  # the first of each fills caches that live on
        assert b'"errors"' not in await asgi_post(app, "/graphql", {"query": query, "variables": variables})
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        answers = [await asgi_post(app, "/graphql", {"query": query, "variables": variables})
                   for query, variables in requests]
        gc.collect()
        left = sorted({type(thing).__qualname__ for thing in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert str(order_id).encode() in answers[0] and answers[1].count(b'"status":"COMPLETED"') >= 3
    assert left == []


async def test_an_orders_parts_read_with_it_are_answered_without_a_task_each(
    system: System, read_model: RowsReadModel
) -> None:
    # graphql-core runs each field that answers with an awaitable as a task of its own.
    app = create_app(system=system, read_model=read_model, settings=system.settings)
    [order_id] = customers_orders(read_model, 1, uuid4())
    loop, tasks = asyncio.get_running_loop(), []

    def counted(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        tasks.append(getattr(coro, "__qualname__", repr(coro)))
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counted)
    try:
        answer = await asgi_post(app, "/graphql", {"query": ORDER, "variables": {"id": str(order_id)}})
    finally:
        loop.set_task_factory(None)
    assert b'"trackingNumber":"TRK1"' in answer and b'"errors"' not in answer
    assert tasks == []


async def test_an_order_too_new_for_the_read_model_shows_the_parts_already_projected(
    client: httpx.AsyncClient, system: System, read_model: RowsReadModel
) -> None:
    placed = parse_command(PlaceOrder, {
        "customer_id": str(uuid4()), "items": [{"product_id": str(MOUSE), "quantity": 1}],
        "shipping_address": {"street": "1 Main St", "city": "Springfield", "state": "IL",
                             "zip_code": "62701", "country": "US"}})
    order_id = listed_mouse(system.orders).place_order(placed)
    fulfilled = read_model.add_order(replace(order_row(), id=order_id), fulfilled=True)
    del read_model.orders_rows[fulfilled.id]  # the payment, shipment and saga are projected; the order is not

    order = (await data_of(client, ORDER, {"id": str(order_id)}))["order"]

    assert order["id"] == str(order_id) and order["status"] == "PENDING"
    assert (order["payment"]["status"], order["shipment"]["trackingNumber"], order["saga"]["status"]) == (
        "COMPLETED", "TRK1", "COMPLETED")


async def test_a_page_that_does_not_ask_for_the_total_does_not_count_every_order(
    client: httpx.AsyncClient, read_model: RowsReadModel
) -> None:
    customers_orders(read_model, 3, uuid4())

    data = await data_of(client, "{ orders(first: 2) { edges { node { id } } pageInfo { hasNextPage } } }")

    assert len(data["orders"]["edges"]) == 2 and data["orders"]["pageInfo"]["hasNextPage"] is True
    assert read_model.calls == {"orders": 1}


async def test_pages_run_newest_first_and_each_cursor_continues_after_its_page(
    client: httpx.AsyncClient, read_model: RowsReadModel
) -> None:
    customer = uuid4()
    expected = customers_orders(read_model, 5, customer)
    customers_orders(read_model, 3, uuid4())  # someone else's

    seen: list[str] = []
    after = None
    for _ in range(3):
        variables = {"first": 2, "after": after, "customer": str(customer)}
        page = (await data_of(client, LIST, variables))["orders"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"]
        assert page["totalCount"] == 5
    assert seen == [str(i) for i in expected]
    assert page["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("first", [0, 101, -5])
async def test_a_page_size_outside_1_to_100_is_refused_naming_the_argument(
    client: httpx.AsyncClient, first: int
) -> None:
    answer = await graphql(client, LIST, {"first": first})
    (error,) = answer["errors"]
    assert "between 1 and 100" in error["message"]
    assert error["extensions"] == {"code": "VALIDATION_ERROR", "field": "first"}


async def test_a_cursor_not_made_by_the_api_is_refused(client: httpx.AsyncClient) -> None:
    answer = await graphql(client, LIST, {"after": "not-a-cursor"})
    assert answer["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


async def test_admin_mutations_without_an_admin_token_are_refused_and_change_nothing(
    system: System, read_model: RowsReadModel
) -> None:
    settings = requiring_tokens(system.settings)
    app = create_app(system=system, read_model=read_model, settings=settings)
    before = system.inventory.get_stock(MOUSE).on_hand
    refusals = [({}, "UNAUTHENTICATED"), ({"Authorization": "Bearer wrong"}, "UNAUTHENTICATED"),
                ({"Authorization": ADMIN_TOKEN}, "UNAUTHENTICATED"), (operator(settings), "FORBIDDEN"),
                (customer(settings, uuid4()), "FORBIDDEN")]
    async with api_client(app) as guarded:
        for headers, code in refusals:
            answer = await graphql(guarded, RESTOCK, {"id": str(MOUSE), "n": 5}, headers)
            assert answer["data"] is None
            assert [e["extensions"]["code"] for e in answer["errors"]] == [code]
            redrive = await graphql(guarded, 'mutation { redriveDeadLetter(id: "x") { ok } }',
                                    headers=headers)
            assert redrive["data"] is None and redrive["errors"][0]["extensions"]["code"] == code
        done = await data_of(guarded, RESTOCK, {"id": str(MOUSE), "n": 5}, ADMIN)
    assert done["restock"]["product"]["onHand"] == before + 5
    assert system.inventory.get_stock(MOUSE).on_hand == before + 5


async def test_restock_with_the_admin_token_adds_units_and_refuses_a_bad_quantity(
    client: httpx.AsyncClient, system: System
) -> None:
    before = system.inventory.get_stock(MOUSE).on_hand

    data = await data_of(client, RESTOCK, {"id": str(MOUSE), "n": 5}, ADMIN)
    refused = await data_of(client, RESTOCK, {"id": str(MOUSE), "n": 0}, ADMIN)
    unknown = await data_of(client, RESTOCK, {"id": str(uuid4()), "n": 1}, ADMIN)

    assert data["restock"] == {"product": {"id": str(MOUSE), "onHand": before + 5, "available": before + 5},
                               "errors": []}
    assert refused["restock"]["errors"][0] | {"message": ""} == {
        "code": "VALIDATION_ERROR", "message": "", "field": "quantity"}
    assert unknown["restock"]["errors"][0]["code"] == "UNKNOWN_PRODUCT"
    assert system.inventory.get_stock(MOUSE).on_hand == before + 5


async def test_redrive_without_a_bus_says_it_is_unavailable(client: httpx.AsyncClient) -> None:
    data = await data_of(client, 'mutation { redriveDeadLetter(id: "x") { ok errors { code } } }',
                         headers=ADMIN)
    assert data["redriveDeadLetter"] == {"ok": False, "errors": [{"code": "UNAVAILABLE"}]}


async def test_a_query_deeper_than_the_limit_is_refused_before_it_runs(
    system: System, read_model: RowsReadModel
) -> None:
    app = create_app(system=system, read_model=read_model, settings=system.settings,
                     limits=ApiLimits(max_depth=4))
    async with api_client(app) as client:
        within = await graphql(client, "{ orders { edges { node { saga { status } } } } }")
        # Asked twice: a query text seen before is parsed and validated from a cache, its limits with it.
        too_deep = "{ orders { edges { node { saga { steps { name } } } } } }"
        beyond = [await graphql(client, too_deep) for _ in range(2)]

    assert "errors" not in within
    for answer in beyond:
        assert answer["data"] is None
        assert "exceeds maximum operation depth of 4" in answer["errors"][0]["message"]
    assert read_model.calls["orders"] == 1


async def test_a_body_over_the_limit_gets_a_413_with_a_json_reason(client: httpx.AsyncClient) -> None:
    padding = " " * (70 * 1024)
    response = await client.post("/graphql", json={"query": "{ products { id } }" + padding})
    rest = await client.post("/api/v1/orders", content=b"{" + b" " * (70 * 1024) + b"}",
                             headers={"content-type": "application/json"})

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b" " * 1024

    chunked = await client.post("/graphql", content=chunks(), headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert rest.status_code == 413
    assert rest.json()["error"]["code"] == "PAYLOAD_TOO_LARGE" and rest.json()["success"] is False
    assert chunked.status_code == 413


async def test_a_document_with_too_many_tokens_is_refused(client: httpx.AsyncClient) -> None:
    fields = " ".join(f"a{i}: __typename" for i in range(3000))
    for _ in range(2):
        answer = await graphql(client, f"{{ {fields} }}")
        assert "token" in answer["errors"][0]["message"].lower()


async def test_metrics_count_requests_by_route_and_graphql_operations_by_name(
    client: httpx.AsyncClient,
) -> None:
    await graphql(client, "query Catalogue { products { id } }")
    await client.get("/api/v1/orders/" + str(uuid4()))

    text = (await client.get("/metrics")).text

    assert 'graphql_operations_total{name="Catalogue",outcome="ok",type="query"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/api/v1/orders/{order_id}",status="404"} 1.0' in text
    assert "http_request_duration_seconds_bucket" in text


async def test_readiness_reports_the_projections_and_fails_when_they_cannot_be_read(
    client: httpx.AsyncClient, read_model: RowsReadModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["projections"] == {"order_summary": {"position": 0, "lag": 0}}

    async def unreachable() -> Any:
        raise ConnectionError("read store is down")

    monkeypatch.setattr(read_model, "projection_status", unreachable)
    down = await client.get("/readyz")
    assert down.status_code == 503
    # The part is named; why it is down is for the log, not for whoever asks.
    assert down.json()["down"] == ["projections"] and down.json()["projections"] == "unreachable"
    assert "read store is down" not in down.text


async def test_a_browser_gets_graphiql_at_the_graphql_address(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


async def test_an_app_built_with_only_a_readiness_check_serves_health_and_metrics() -> None:
    async with api_client(create_app()) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
        assert (await http.post("/graphql", json={"query": "{ products { id } }"})).status_code == 404


def test_a_field_without_a_resolver_reads_its_attribute_and_one_with_a_resolver_keeps_it() -> None:
    fields = build_schema()._schema.type_map["Order"].fields  # type: ignore[attr-defined]

    class Source:
        failure_reason = "declined"

    read = fields["failureReason"].resolve
    assert read is not None and read(Source(), None) == "declined"
    assert read.__code__.co_name == "resolve" and read.__code__.co_argcount == 2
    for own in ("payment", "shipment", "saga", "integrity"):
        resolver = fields[own].resolve
        assert resolver is not None and resolver.__code__ is not read.__code__, own


@strawberry.enum
class Mood(Enum):
    CALM = "calm"


@strawberry.type
class Thing:
    name: str
    count: int
    note: str | None
    mood: Mood

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    async def later(self) -> int:
        return self.count


GOOD = Thing(name="a", count=1, note=None, mood=Mood.CALM)
BAD: list[Any] = [
    Thing(name=None, count=2, note="x", mood=Mood.CALM),  # type: ignore[arg-type]  # null where promised
    Thing(name="c", count="many", note="y", mood=Mood.CALM),  # type: ignore[arg-type]  # refused by Int
    Thing(name="d", count=4, note=ValueError("boom"), mood=Mood.CALM),  # type: ignore[arg-type]
    Thing(name="e", count=5, note="z", mood="sulky"),  # type: ignore[arg-type]  # no such enum value
]


@strawberry.type
class Things:
    @strawberry.field
    def good(self) -> Thing:
        return GOOD

    @strawberry.field
    def things(self) -> list[Thing | None]:
        return [GOOD, *BAD]


class Counting(ExecutionContext):
    """Records the fields for which graphql-core built a resolve info."""

    infos: list[str] = []

    def build_resolve_info(self, field_def: GraphQLField, field_nodes: Any, parent_type: GraphQLObjectType,
                           path: Any) -> GraphQLResolveInfo[Any]:
        Counting.infos.append(f"{parent_type.name}.{field_nodes[0].name.value}")
        return super().build_resolve_info(field_def, field_nodes, parent_type, path)


class Shouting(SchemaExtension):
    def resolve(self, _next: Any, root: Any, info: GraphQLResolveInfo[Any], *args: Any, **kwargs: Any) -> Any:
        value = _next(root, info, *args, **kwargs)
        return value.upper() if isinstance(value, str) else value


def things_schema(*, direct: bool, extensions: list[Any] | None = None) -> strawberry.Schema:
    schema = strawberry.Schema(query=Things, execution_context_class=Counting, extensions=extensions or [])
    if direct:
        read_attributes_directly(schema)
    return schema


def answered(schema: strawberry.Schema, query: str,
             variables: dict[str, Any] | None = None) -> tuple[Any, list[tuple[Any, ...]]]:
    result = asyncio.run(schema.execute(query, variable_values=variables))
    errors = sorted((e.message, e.path, e.locations) for e in result.errors or [])
    return result.data, errors


def test_a_scalar_field_read_directly_answers_as_graphql_core_does_good_values_and_bad() -> None:
    query = "{ things { name count note mood __typename } good { mood } }"
    Counting.infos = []
    direct = answered(things_schema(direct=True), query)
    direct_infos, Counting.infos = Counting.infos, []
    assert direct == answered(things_schema(direct=False), query)
    data, errors = direct
    assert data["things"][0] == {"name": "a", "count": 1, "note": None, "mood": "CALM", "__typename": "Thing"}
    # An error in a required field nulls its object; in a nullable one, the field alone.
    assert data["things"][1:] == [None, None, {"name": "d", "count": 4, "note": None, "mood": "CALM",
                                               "__typename": "Thing"}, None]
    assert data["good"] == {"mood": "CALM"}
    assert [(message, path) for message, path, _ in errors] == sorted([
        ("Cannot return null for non-nullable field Thing.name.", ["things", 1, "name"]),
        ("Int cannot represent non-integer value: 'many'", ["things", 2, "count"]),
        ("boom", ["things", 3, "note"]),
        ("Enum 'Mood' cannot represent value: 'sulky'", ["things", 4, "mood"]),
    ])
    # Only the root fields and the refused values went through a resolve info; the good leaves and
    # `__typename` did not.
    assert sorted(direct_infos) == sorted(["Things.things", "Things.good", "Thing.name", "Thing.count",
                                           "Thing.note", "Thing.mood"])


def test_fields_read_directly_keep_their_places_among_those_graphql_core_answers() -> None:
    query = "{ things { later name shout mood __typename count } good { shout note later } }"
    direct = answered(things_schema(direct=True), query)
    assert direct == answered(things_schema(direct=False), query)
    data, errors = direct
    assert list(data["things"][0].items()) == [("later", 1), ("name", "a"), ("shout", "A"), ("mood", "CALM"),
                                               ("__typename", "Thing"), ("count", 1)]
    assert list(data["good"]) == ["shout", "note", "later"]
    assert sorted(path for _, path, _ in errors) == [["things", 1, "name"], ["things", 2, "count"],
                                                     ["things", 4, "mood"]]


def test_a_schema_extension_that_wraps_resolvers_sees_every_field_read_directly_too() -> None:
    data, errors = answered(things_schema(direct=True, extensions=[Shouting]), "{ good { name note } }")
    assert errors == [] and data == {"good": {"name": "A", "note": None}}


def test_the_api_schema_reads_most_of_an_order_s_scalar_fields_directly() -> None:
    fields = build_schema()._schema.type_map["Order"].fields  # type: ignore[attr-defined]
    direct = {name for name, field in fields.items() if LEAF in field.extensions}
    assert {"failureReason", "status", "customerId"} <= direct
    assert not direct & {"payment", "shipment", "saga", "integrity"}


def test_an_operation_s_fields_are_collected_once_unless_its_variables_can_change_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collected: list[str] = []

    def counted(*args: Any) -> Any:
        collected.append(args[4].name)  # the type whose sub-fields are collected
        return collect_subfields(*args)

    monkeypatch.setattr(graphql_executor, "collect_subfields", counted)
    documents = Documents([], max_tokens=1000, maxsize=8)
    schema = things_schema(direct=True, extensions=[lambda: PreparedDocuments(documents)])
    plain = "{ things { name shout } good { ...Moody } } fragment Moody on Thing { mood }"
    first = answered(schema, plain)
    assert first[0]["good"] == {"mood": "CALM"} and sorted(set(collected)) == ["Thing"]
    asked = len(collected)
    assert answered(schema, plain) == first and len(collected) == asked  # the same document: kept

    varying = "query($full: Boolean!) { good { name note @include(if: $full) } }"
    for full, expected in [(True, {"name": "a", "note": None}), (False, {"name": "a"}),
                           (True, {"name": "a", "note": None})]:
        assert answered(schema, varying, {"full": full}) == ({"good": expected}, [])
    assert len(collected) == asked + 3  # a directive: collected anew each time


def test_the_collections_of_an_operation_go_when_its_document_is_freed() -> None:
    gc.collect()
    before = len(COLLECTIONS)
    schema = things_schema(direct=True)  # no kept documents: each operation parsed anew
    for _ in range(3):
        assert answered(schema, "{ good { name } }")[1] == []
    gc.collect()
    assert len(COLLECTIONS) == before

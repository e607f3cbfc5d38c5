"""The permission layer's tables cover the whole API, and what each caller may do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from uuid import uuid4

import pytest
from starlette.types import Message

from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from read_api.app import create_app
from read_api.identity import ANONYMOUS, DEVELOPER, Principal
from read_api.permissions import (
    DOCUMENTATION_ROUTES,
    GRAPHQL_FIELDS,
    NOBODY,
    ROUTES,
    Access,
    ForbiddenError,
    Rule,
    UnauthenticatedError,
)
from read_api.schema import build_schema
from tests.api_harness import RowsReadModel, api_client
from tests.tokens import requiring_tokens

A, B = uuid4(), uuid4()
CUSTOMER_A = Access(Principal(str(A), frozenset({"customer"})))
OPERATOR = Access(Principal("ops", frozenset({"operator"})))
ADMIN_ONLY = Access(Principal("root", frozenset({"admin"})))
NO_SCOPE = Access(Principal("someone", frozenset()))
BAD_TOKEN = Access(ANONYMOUS, problem="the token has expired")


@pytest.fixture
def system() -> Iterator[System]:
    with bootstrap(Settings(_env_file=None, database_url="memory://")) as built:
        yield built


def test_every_root_field_of_the_schema_has_a_rule_and_every_rule_a_field() -> None:
    schema = build_schema()._schema
    fields = {
        f"{kind.name}.{name}"
        for kind in (schema.query_type, schema.mutation_type, schema.subscription_type) if kind is not None
        for name in kind.fields
    }
    assert fields == set(GRAPHQL_FIELDS)


async def test_every_route_a_rule_lists_is_served_and_open_to_the_developer(system: System) -> None:
    app = create_app(system=system, read_model=RowsReadModel(), settings=system.settings)
    async with api_client(app) as client:
        for method, template in sorted(ROUTES):
            if method == "WEBSOCKET":
                continue
            path = re.sub(r"\{[a-z_]+\}", str(uuid4()), template)
            answer = await client.request(method, path, json={} if method == "POST" else None)
            # A route with an id may answer that it has no such thing; one without must be there.
            refusals = (401, 403, 405) if "{" in template else (401, 403, 404, 405)
            assert answer.status_code not in refusals, (method, path, answer.status_code, answer.text)
        docs = [await client.get(path) for path in sorted(DOCUMENTATION_ROUTES - {"/docs/oauth2-redirect"})]
    assert [answer.status_code for answer in docs] == [200, 200, 200]


async def test_a_route_no_rule_opens_is_refused_to_everyone_even_an_admin(system: System) -> None:
    settings = requiring_tokens(system.settings)
    app = create_app(system=system, read_model=RowsReadModel(), settings=settings)

    @app.get("/api/v1/secrets")
    async def secrets() -> dict[str, str]:
        return {"secret": "everything"}

    async with api_client(app) as client:
        anonymous = await client.get("/api/v1/secrets")
        admin = await client.get("/api/v1/secrets", headers={"Authorization": "Bearer s3cret-admin-token"})
    assert anonymous.status_code == 403 and admin.status_code == 403
    assert admin.json()["error"]["code"] == "FORBIDDEN"
    assert "everything" not in admin.text


async def test_graphql_is_closed_too_when_no_rule_opens_it(
    system: System, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /graphql is served by Strawberry's own view, not a FastAPI route: it asks the guard itself.
    closed = {route: rule for route, rule in ROUTES.items() if route[1] != "/graphql"}
    monkeypatch.setattr("read_api.guard.ROUTES", closed)
    app = create_app(system=system, read_model=RowsReadModel(), settings=system.settings)
    address = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701",
               "country": "US"}
    order = {"customerId": str(A), "items": [{"productId": str(uuid4()), "quantity": 1}],
             "shippingAddress": address}
    place = {"query": "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { order { id } } }",
             "variables": {"input": order}}
    written = system.orders.recorder.max_notification_id()
    async with api_client(app) as client:
        posted = await client.post("/graphql", json=place)
        got = await client.get("/graphql", params={"query": "{ products { id name } }"})
    assert [posted.status_code, got.status_code] == [403, 403]
    for answer in (posted, got):  # in GraphQL's shape, as every refusal at /graphql
        message = f"{answer.request.method} /graphql is not open to anyone"
        assert answer.json() == {"errors": [{"message": message, "extensions": {"code": "FORBIDDEN"}}]}
    assert system.orders.recorder.max_notification_id() == written


async def test_a_graphql_websocket_is_closed_when_no_rule_opens_it(
    system: System, monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed = {route: rule for route, rule in ROUTES.items() if route != ("WEBSOCKET", "/graphql")}
    monkeypatch.setattr("read_api.guard.ROUTES", closed)
    app = create_app(system=system, read_model=RowsReadModel(), settings=system.settings)
    incoming = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "path": "/graphql", "raw_path": b"/graphql",
             "root_path": "", "query_string": b"", "scheme": "ws", "server": ("api.test", 80),
             "headers": [(b"host", b"api.test"), (b"sec-websocket-protocol", b"graphql-transport-ws")],
             "subprotocols": ["graphql-transport-ws"]}
    await app(scope, receive, send)
    assert [message["type"] for message in sent] == ["websocket.close"]
    assert sent[0]["code"] == 4403


@pytest.mark.parametrize(("access", "rule", "refusal"), [
    (Access(ANONYMOUS), Rule.ORDERS, UnauthenticatedError),
    (Access(ANONYMOUS), Rule.OPERATOR, UnauthenticatedError),
    (BAD_TOKEN, Rule.ORDERS, UnauthenticatedError),
    (BAD_TOKEN, Rule.ADMIN, UnauthenticatedError),
    (NO_SCOPE, Rule.ORDERS, ForbiddenError),
    (CUSTOMER_A, Rule.OPERATOR, ForbiddenError),
    (CUSTOMER_A, Rule.ADMIN, ForbiddenError),
    (OPERATOR, Rule.ADMIN, ForbiddenError),
    (ADMIN_ONLY, Rule.ORDERS, ForbiddenError),
])
def test_a_caller_without_the_scope_is_refused(access: Access, rule: Rule, refusal: type[Exception]) -> None:
    with pytest.raises(refusal):
        access.require(rule, "it")


@pytest.mark.parametrize("access", [Access(ANONYMOUS), BAD_TOKEN, CUSTOMER_A, OPERATOR, NO_SCOPE])
def test_the_catalogue_is_open_to_anyone(access: Access) -> None:
    access.require_field("Query", "products")
    access.require_field("Query", "product")


def test_a_field_not_in_the_table_is_closed_even_to_the_developer() -> None:
    with pytest.raises(ForbiddenError):
        Access(DEVELOPER).require_field("Query", "everything")
    with pytest.raises(UnauthenticatedError):
        Access(ANONYMOUS).require_field("Query", "everything")


def test_a_customer_sees_only_its_own_orders_and_an_operator_every_order() -> None:
    assert CUSTOMER_A.sees_order_of(A) and not CUSTOMER_A.sees_order_of(B)
    assert OPERATOR.sees_order_of(A) and OPERATOR.sees_order_of(B)
    assert not BAD_TOKEN.sees_order_of(A) and not NO_SCOPE.sees_order_of(A)


def test_a_customer_lists_its_own_orders_whatever_it_asks_for() -> None:
    assert CUSTOMER_A.customer_filter(None) == A
    assert CUSTOMER_A.customer_filter(A) == A
    assert CUSTOMER_A.customer_filter(B) == NOBODY
    assert OPERATOR.customer_filter(None) is None
    assert OPERATOR.customer_filter(B) == B


def test_a_customer_places_orders_for_itself_only() -> None:
    assert CUSTOMER_A.placing_for(None) == str(A)
    assert CUSTOMER_A.placing_for(str(A)) == str(A)
    for other in (str(B), "not-an-id"):
        with pytest.raises(ForbiddenError) as refused:
            CUSTOMER_A.placing_for(other)
        assert refused.value.field == "customer_id"
    assert OPERATOR.placing_for(str(B)) == str(B)
    assert Access(DEVELOPER).placing_for(None) is None  # then the command says customer_id is missing


@pytest.mark.parametrize("introspection", [None, True])
async def test_introspection_and_the_docs_are_off_in_required_mode_unless_turned_on(
    system: System, introspection: bool | None,
) -> None:
    settings = requiring_tokens(system.settings, graphql_introspection=introspection)
    app = create_app(system=system, read_model=RowsReadModel(), settings=settings)
    async with api_client(app) as client:
        schema = (await client.post("/graphql", json={"query": "{ __schema { queryType { name } } }"})).json()
        ide = await client.get("/graphql", headers={"Accept": "text/html"})
        docs = await client.get("/openapi.json")
    if introspection:
        assert schema["data"]["__schema"]["queryType"]["name"] == "Query"
        assert ide.status_code == 200 and docs.status_code == 200
    else:
        assert schema.get("data") is None and "introspection" in schema["errors"][0]["message"].lower()
        assert ide.status_code != 200 and docs.status_code == 403


async def test_a_rest_refusal_carries_the_clients_request_id(system: System) -> None:
    app = create_app(system=system, read_model=RowsReadModel(), settings=requiring_tokens(system.settings))
    async with api_client(app) as client:
        refused = await client.get(f"/api/v1/orders/{uuid4()}", headers={"X-Request-ID": "trace-me-42"})
    assert refused.status_code == 401
    assert refused.json()["request_id"] == "trace-me-42"
    assert refused.json()["error"]["code"] == "UNAUTHENTICATED"

"""GraphQL errors: a client's mistake is one line with its code; a failure of ours is masked, logged once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from graphql import GraphQLError

from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from read_api.app import create_app
from tests.api_harness import ADMIN, ADMIN_TOKEN, RowsReadModel, api_client, graphql
from tests.tokens import requiring_tokens

PLACE = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { errors { code } } }"
ADDRESS = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701", "country": "US"}
NOT_AN_INPUT = {"input": {"customerId": "c", "items": [{"productId": "p", "quantity": "two"}],
                          "shippingAddress": ADDRESS}}
"""Only the quantity is wrong: a placeOrder whose input does not fit the schema, refused before it runs."""


@pytest.fixture
def system() -> Iterator[System]:
    with bootstrap(Settings(_env_file=None, database_url="memory://", admin_token=ADMIN_TOKEN)) as built:
        yield built


@pytest.fixture
def read_model() -> RowsReadModel:
    return RowsReadModel()


@pytest.fixture
async def client(system: System, read_model: RowsReadModel) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(system=system, read_model=read_model, settings=system.settings)) as http:
        yield http


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def lines_about_graphql(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("read_api.graphql", "strawberry"))]


def failing_with(read_model: RowsReadModel, error: Exception) -> None:
    async def orders(**_: Any) -> Any:
        raise error

    read_model.orders = orders  # type: ignore[method-assign]


@pytest.mark.parametrize(("query", "code"), [
    ('{ order(id: "not-an-id") { id } }', "VALIDATION_ERROR"),
    ("{ orders(first: 1000) { edges { cursor } } }", "VALIDATION_ERROR"),
    ('{ orders(after: "forged") { edges { cursor } } }', "INVALID_CURSOR"),
    ("{ orders { edges { nothing } } }", "GRAPHQL_VALIDATION_FAILED"),
    ("{ orders { edges ", "GRAPHQL_PARSE_FAILED"),
    ('query($n: Int) { orders(first: $n) { edges { cursor } } }', "GRAPHQL_VALIDATION_FAILED"),
])
async def test_a_client_mistake_is_answered_with_its_code_and_logged_as_one_line_without_a_traceback(
    client: httpx.AsyncClient, logs: pytest.LogCaptureFixture, query: str, code: str
) -> None:
    variables = {"n": "ten"} if "$n" in query else None

    answer = await graphql(client, query, variables)

    assert [error["extensions"]["code"] for error in answer["errors"]] == [code]
    (line,) = lines_about_graphql(logs)
    assert line.levelno == logging.INFO and line.exc_info is None
    assert code in line.getMessage() and "\n" not in line.getMessage()
    assert "Traceback" not in logs.text


async def test_a_refusal_by_the_permission_layer_counts_as_a_client_mistake(
    client: httpx.AsyncClient, read_model: RowsReadModel, logs: pytest.LogCaptureFixture
) -> None:
    failing_with(read_model, GraphQLError("sign in to list orders", extensions={"code": "UNAUTHENTICATED"}))

    answer = await graphql(client, "{ orders { edges { cursor } } }")

    assert answer["errors"][0]["message"] == "sign in to list orders"
    assert answer["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    (line,) = lines_about_graphql(logs)
    assert line.levelno == logging.INFO and line.exc_info is None and "UNAUTHENTICATED" in line.getMessage()


async def test_an_unexpected_failure_answers_internal_with_a_request_id_and_logs_its_traceback_once(
    client: httpx.AsyncClient, read_model: RowsReadModel, logs: pytest.LogCaptureFixture
) -> None:
    failing_with(read_model, RuntimeError("secret detail"))

    response = await client.post("/graphql", json={"query": "query Listing { orders { edges { cursor } } }"})

    assert response.status_code == 200
    assert "secret detail" not in response.text
    (error,) = response.json()["errors"]
    assert error["message"] == "internal error"
    request_id = error["extensions"]["requestId"]
    assert error["extensions"] == {"code": "INTERNAL", "requestId": request_id} and request_id
    (line,) = lines_about_graphql(logs)
    assert line.levelno == logging.ERROR and request_id in line.getMessage()
    assert line.exc_info is not None and isinstance(line.exc_info[1], RuntimeError)
    assert logs.text.count("Traceback") == 1
    assert "secret detail" in logs.text  # the log keeps what the client is not told


async def test_each_failure_has_its_own_request_id(
    client: httpx.AsyncClient, read_model: RowsReadModel, logs: pytest.LogCaptureFixture
) -> None:
    failing_with(read_model, KeyError("missing"))

    answers = [await graphql(client, "{ orders { edges { cursor } } }") for _ in range(2)]

    ids = {answer["errors"][0]["extensions"]["requestId"] for answer in answers}
    assert len(ids) == 2
    assert [r.levelno for r in lines_about_graphql(logs)] == [logging.ERROR, logging.ERROR]
    assert all(any(i in r.getMessage() for i in ids) for r in lines_about_graphql(logs))


@pytest.mark.parametrize(("query", "variables", "signed_in", "code"), [
    ("{ orders { edges { cursor } } }", None, False, "UNAUTHENTICATED"),
    (PLACE, NOT_AN_INPUT, True, "GRAPHQL_VALIDATION_FAILED"),
    ("{ products { id colour } }", None, True, "GRAPHQL_VALIDATION_FAILED"),
])
async def test_in_required_mode_a_refused_caller_or_input_is_one_info_line_and_nothing_at_error(
    system: System, read_model: RowsReadModel, logs: pytest.LogCaptureFixture,
    query: str, variables: dict[str, Any] | None, signed_in: bool, code: str,
) -> None:
    app = create_app(system=system, read_model=read_model, settings=requiring_tokens(system.settings))
    async with api_client(app) as client:
        answer = await graphql(client, query, variables, headers=ADMIN if signed_in else None)

    assert [error["extensions"]["code"] for error in answer["errors"]] == [code]
    (line,) = lines_about_graphql(logs)
    assert line.levelno == logging.INFO and line.exc_info is None
    assert code in line.getMessage() and "\n" not in line.getMessage()
    assert [r for r in logs.records if r.levelno >= logging.WARNING] == []

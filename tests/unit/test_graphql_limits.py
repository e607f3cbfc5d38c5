"""How much one GraphQL request may ask for: refused with a code before any resolver runs."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import strawberry.schema.schema as strawberry_schema
from graphql import parse, validate

from commands.inventory import SEED_CATALOGUE
from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from read_api import schema as read_api_schema
from read_api.app import ApiLimits, create_app
from read_api.graphql_limits import MAX_ALIASES, MAX_DEPTH, MAX_FIELDS, Limits, limit_rule
from read_api.schema import Documents, build_schema
from tests.api_harness import ADMIN_TOKEN, RowsReadModel, api_client, graphql, order_row

ROOT = Path(__file__).resolve().parents[2]
MOUSE, KEYBOARD = SEED_CATALOGUE[1].product_id, SEED_CATALOGUE[2].product_id


@pytest.fixture
def system() -> Iterator[System]:
    with bootstrap(Settings(_env_file=None, database_url="memory://", admin_token=ADMIN_TOKEN)) as built:
        yield built


@pytest.fixture
def read_model() -> RowsReadModel:
    model = RowsReadModel()
    model.add_order(order_row(), fulfilled=True)
    return model


@pytest.fixture
async def client(system: System, read_model: RowsReadModel) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(system=system, read_model=read_model, settings=system.settings)) as http:
        yield http


def codes(answer: dict[str, object]) -> list[object]:
    errors = answer.get("errors")
    assert isinstance(errors, list)
    return [error["extensions"].get("code") for error in errors]


async def test_two_hundred_aliased_pages_are_refused_fast_without_reading_a_row(
    client: httpx.AsyncClient, read_model: RowsReadModel
) -> None:
    pages = " ".join(f"p{i}: orders(first: 100) {{ edges {{ node {{ id }} }} }}" for i in range(200))

    started = time.perf_counter()
    answer = await graphql(client, f"{{ {pages} }}")
    took = time.perf_counter() - started

    assert answer["data"] is None
    assert codes(answer) == ["TOO_MANY_ALIASES"]
    assert f"at most {MAX_ALIASES}" in answer["errors"][0]["message"]
    assert read_model.calls == {}
    assert took < 1.0


async def test_as_many_aliases_as_the_limit_run(client: httpx.AsyncClient) -> None:
    pages = " ".join(f"p{i}: orders(first: 1) {{ edges {{ node {{ id }} }} }}" for i in range(MAX_ALIASES))

    answer = await graphql(client, f"{{ {pages} }}")

    assert "errors" not in answer
    assert len(answer["data"]) == MAX_ALIASES


async def test_too_many_fields_are_refused_before_any_resolver_runs(
    client: httpx.AsyncClient, read_model: RowsReadModel
) -> None:
    fields = " ".join(["id status totalAmount"] * 70)

    answer = await graphql(client, f"{{ orders {{ edges {{ node {{ {fields} }} }} }} }}")

    assert codes(answer) == ["TOO_MANY_FIELDS"]
    assert read_model.calls == {}


async def test_fragments_that_spread_each_other_twice_are_measured_once_each_and_refused_fast(
    client: httpx.AsyncClient, read_model: RowsReadModel
) -> None:
    # Spread out, this asks for 2^60 fields; measuring each spread anew would never end.
    fragments = "\n".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(60))
    document = f"{{ ...F0 }}\n{fragments}\nfragment F60 on Query {{ products {{ id }} }}"

    started = time.perf_counter()
    answer = await graphql(client, document)

    assert codes(answer) == ["TOO_MANY_FIELDS"]
    assert time.perf_counter() - started < 1.0
    assert read_model.calls == {}


async def test_a_document_over_the_token_limit_is_refused_with_its_code(client: httpx.AsyncClient) -> None:
    tokens = " ".join(f"a{i}: __typename" for i in range(3000))

    answers = [await graphql(client, f"{{ {tokens} }}") for _ in range(2)]

    for answer in answers:
        assert codes(answer) == ["TOO_MANY_TOKENS"]


async def test_a_query_text_asked_again_is_neither_parsed_nor_validated_again(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    validated: list[str] = []

    def counting_parse(source: str, **options: object) -> object:
        parsed.append(source)
        return parse(source, **options)  # type: ignore[arg-type]

    def counting_validate(schema: object, document: object, rules: object) -> object:
        validated.append("once")
        return validate(schema, document, rules)  # type: ignore[arg-type]

    for module in (read_api_schema, strawberry_schema):
        monkeypatch.setattr(module, "parse", counting_parse)
    monkeypatch.setattr(strawberry_schema, "validate", counting_validate)
    query = "{ orders { edges { node { id status } } } }"
    unknown = "{ orders { edges { node { id colour } } } }"

    answers = [await graphql(client, query) for _ in range(3)]
    refusals = [await graphql(client, unknown) for _ in range(2)]

    assert "errors" not in answers[0] and answers[0]["data"]["orders"]["edges"]
    assert answers[1] == answers[2] == answers[0]
    for refusal in refusals:
        assert refusal["data"] is None
        assert "Cannot query field 'colour'" in refusal["errors"][0]["message"]
    assert parsed == [query, unknown]
    assert len(validated) == 2


def test_the_kept_documents_are_the_last_ones_asked_for_and_none_beyond_the_token_limit() -> None:
    documents = Documents((), max_tokens=20, maxsize=2)
    too_long = "{ " + " ".join(f"f{i}" for i in range(30)) + " }"

    a, b = documents.parsed("{ a }"), documents.parsed("{ b }")
    assert a is not None and b is not None
    assert documents.parsed("{ a }") is a  # kept, and now the most recently asked for
    documents.parsed("{ c }")  # one more than it keeps: the least recently asked for goes

    assert documents.parsed("{ a }") is a
    assert documents.parsed("{ b }") is not b
    assert documents.parsed(too_long) is None


async def test_a_query_deeper_than_the_limit_is_refused_with_its_code(
    system: System, read_model: RowsReadModel
) -> None:
    within = "{ orders { edges { node { saga { steps { name } } } } } }"
    strict = create_app(system=system, read_model=read_model, settings=system.settings,
                        limits=ApiLimits(max_depth=4))
    async with api_client(strict) as client:
        refused = [await graphql(client, within) for _ in range(2)]  # the second from the validation cache

    for answer in refused:
        assert codes(answer) == ["TOO_DEEP"]
        assert answer["errors"][0]["extensions"]["limit"] == 4
    assert read_model.calls == {}


def operations_of_the_dashboard() -> list[str]:
    page = (ROOT / "read_api" / "dashboard.html").read_text(encoding="utf-8")
    constants = dict(re.findall(r"const (\w+) = `([^`]*)`;", page))
    numbers = dict(re.findall(r"const (\w+) = (\d+);", page))  # page sizes the queries ask for
    filled = {name: re.sub(r"\$\{(\w+)\}", lambda m: {**constants, **numbers}[m.group(1)], text)
              for name, text in constants.items()}
    return [text for text in filled.values() if re.match(r"\s*(query|mutation|subscription)\b", text)]


def operations_of_the_readme() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```graphql\n(.*?)```", readme, flags=re.DOTALL)
    return [line for block in blocks for line in re.split(r"\n(?=query|mutation|subscription)", block)
            if line.strip()]


def test_the_dashboard_and_the_readme_ask_for_no_more_than_the_limits_allow() -> None:
    operations = operations_of_the_dashboard() + operations_of_the_readme()
    schema = build_schema()
    rule = limit_rule(Limits(max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES, max_fields=MAX_FIELDS))

    refused = {text: [error.message for error in validate(schema._schema, parse(text), [rule])]
               for text in operations}

    assert len(operations_of_the_dashboard()) >= 3, "the dashboard's queries were not found"
    assert {text: messages for text, messages in refused.items() if messages} == {}


EVENTS = """query($stream: ID!, $first: Int, $after: String) {
  events(streamId: $stream, first: $first, after: $after) { version cursor } }"""


@pytest.mark.parametrize(("first", "after", "field", "code"), [
    (0, None, "first", "VALIDATION_ERROR"),
    (501, None, "first", "VALIDATION_ERROR"),
    (10, "not-a-cursor", "after", "INVALID_CURSOR"),
    (10, "ZTF8MTIzfDQ", "after", "INVALID_CURSOR"),
])
async def test_an_events_page_out_of_range_is_refused_naming_the_argument(
    client: httpx.AsyncClient, system: System, first: int, after: str | None, field: str, code: str
) -> None:
    system.inventory.seed()

    answer = await graphql(client, EVENTS, {"stream": str(MOUSE), "first": first, "after": after})

    assert answer["data"] is None
    assert answer["errors"][0]["extensions"] == {"code": code, "field": field}


async def test_an_events_cursor_of_another_stream_is_refused(
    client: httpx.AsyncClient, system: System
) -> None:
    system.inventory.seed()
    other = (await graphql(client, EVENTS, {"stream": str(KEYBOARD), "first": 1}))["data"]["events"]

    answer = await graphql(client, EVENTS, {"stream": str(MOUSE), "after": other[0]["cursor"]})
    default = await graphql(client, EVENTS, {"stream": str(MOUSE)})  # `first` at its default, 100

    assert answer["errors"][0]["extensions"] == {"code": "INVALID_CURSOR", "field": "after"}
    assert "errors" not in default and default["data"]["events"][0]["version"] == 1

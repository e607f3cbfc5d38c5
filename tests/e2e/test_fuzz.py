"""The running API fuzzed with schemathesis in `required` mode, once as a customer and once as an operator.

GraphQL cases come from the SDL the app's schema prints and REST cases from the
OpenAPI document the app builds, both made in this process: the server under
test keeps introspection, GraphiQL and /openapi.json off, exactly as a
`required` deployment does, so what is fuzzed is what production answers.
Generated ids are mixed with real ones (the catalogue, orders of the caller
and of another customer), so requests get past the id parser to the resolvers.

Every case must answer without a server failure, in the shape its schema
declares, and a refused case (a 4xx, a GraphQL error or a payload error) must
write nothing: the only events the API writes are counted in the server's
SQLite stores before and after each case. At the end the server's log must hold
no traceback and no ERROR line. Generation is seeded and bounded, and nothing
is shrunk, so a run costs the same every time; each distinct failure is
reported once, with the request that reproduces it.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final
from uuid import UUID, uuid4

import httpx
import pytest
import requests
import schemathesis
from eventsourcing.utils import get_topic
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, CheckFunction, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.graphql import nodes
from schemathesis.openapi.checks import JsonSchemaError
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from domain.order import Order
from domain.stock import Stock
from infra.bootstrap import bootstrap
from infra.settings import Settings
from read_api.app import create_app
from read_api.graphql_errors import INTERNAL
from read_api.identity import CUSTOMER, OPERATOR
from read_api.schema import build_schema
from tests import tokens
from tests.api_harness import RowsReadModel
from tests.e2e.test_serve import embedded_server
from tests.tokens import SECRET

GRAPHQL_EXAMPLES: Final = 1700
REST_EXAMPLES: Final = 1000
"""Cases per role: both interfaces together take about a minute of a role's run on the 2-core CI machine."""
SEED: Final = 20_260_301
REQUEST_TIMEOUT: Final = 15.0
BASELINE: Final = Path(__file__).with_name("fuzz_baseline.toml")

PLACED, CANCELLATION, RESTOCKED = map(get_topic, (Order.Placed, Order.CancellationRequested, Stock.Restocked))
API_WRITES: Final = {"orders.sqlite": (PLACED, CANCELLATION), "inventory.sqlite": (RESTOCKED,)}
"""The only events the API itself writes, by store; the saga writes other topics meanwhile."""

CONFIG: Final = schemathesis.Config(seed=SEED)
"""Explicit, so that no schemathesis.toml found on the way up changes the run."""

ADDRESS: Final = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zipCode": "62701",
                  "country": "US"}
PLACE: Final = """mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { order { id } errors { code message } } }"""


def graphql_schema() -> BaseSchema:
    return schemathesis.graphql.from_file(str(build_schema()), config=CONFIG)


def rest_schema() -> BaseSchema:
    """The REST routes as the app documents them."""
    with bootstrap(Settings(_env_file=None, database_url="memory://")) as system:
        document = create_app(system=system, read_model=RowsReadModel()).openapi()
    return schemathesis.openapi.from_dict(document, config=CONFIG).include(path_regex="^/api/v1/")


# ------------------------------------------------------------------------------------------- what is written


@dataclass(frozen=True)
class ApiWrites:
    """Counts the events only the API writes, straight from the server's SQLite stores."""

    data_dir: Path

    def count(self) -> Counter[str]:
        counted: Counter[str] = Counter()
        for store, topics in API_WRITES.items():
            # Read-only on a WAL store: counting never blocks the server's writers.
            connection = sqlite3.connect(f"file:{self.data_dir / store}?mode=ro", uri=True, timeout=30)
            try:
                marks = ", ".join("?" * len(topics))
                counted.update(dict(connection.execute(
                    f"SELECT topic, COUNT(*) FROM stored_events WHERE topic IN ({marks}) GROUP BY topic",
                    topics)))
            finally:
                connection.close()
        return counted


def refusal(response: Response) -> str | None:
    """How the API refused the request (a 4xx, GraphQL errors, a payload's errors), or None if it did not."""
    if response.status_code >= 400:
        return f"HTTP {response.status_code}"
    try:
        answer = response.json()
    except ValueError:
        return None
    if not isinstance(answer, dict) or "success" in answer:  # a REST envelope's `data` holds no payloads
        return None
    if answer.get("errors"):
        return "GraphQL errors"
    data = answer.get("data")
    payloads = data.values() if isinstance(data, dict) else ()
    return "payload errors" if any(isinstance(p, dict) and p.get("errors") for p in payloads) else None


# ------------------------------------------------------------------------------------------- checks


def graphql_answered_without_failing(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """No 5xx, and every GraphQL error names its code, none INTERNAL: a refusal is the client's, never ours.

    Schemathesis' own GraphQL server-error check takes a coded refusal raised in a
    resolver (it carries a path, and a code it does not know) for a failure; the
    project's contract is sharper: a failure of ours is INTERNAL, anything else coded.
    """
    assert response.status_code < 500, f"the server failed with HTTP {response.status_code}"
    try:
        answer = response.json()
    except ValueError:
        return None  # not JSON: response_schema_conformance reports it
    for error in (answer.get("errors") or ()) if isinstance(answer, dict) else ():
        code = (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
        assert isinstance(code, str) and code, f"a GraphQL error without extensions.code: {error}"
        assert code != INTERNAL, f"the server failed: {error}"
    return None


def nothing_written_when_refused(writes: ApiWrites, before: Counter[str]) -> CheckFunction:
    def nothing_written_when_refused(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
        why = refusal(response)
        if why is not None:
            after = writes.count()
            assert after == before, f"refused ({why}) yet wrote {dict(after - before)}"
        return None

    return nothing_written_when_refused


GRAPHQL_CHECKS: Final[Sequence[CheckFunction]] = (
    response_schema_conformance, graphql_answered_without_failing,
)
REST_CHECKS: Final[Sequence[CheckFunction]] = (
    not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
    response_schema_conformance, negative_data_rejection,
)


def finding(failure: Failure) -> str:
    """A failure as the baseline names it: code and kind, and for a schema violation where in the answer."""
    if not isinstance(failure, JsonSchemaError):
        return f"{failure.code} {failure.title}"
    where = "/".join(map(str, failure.instance_path))
    return f"{failure.code} {failure.title} at /{where}"


# ------------------------------------------------------------------------------------------- a run


@dataclass
class Run:
    """One interface fuzzed as one caller: what was sent, what failed, and how long it took."""

    name: str
    url: str
    checks: Sequence[CheckFunction]
    cases: int = 0
    refused: int = 0
    server_errors: int = 0
    seconds: float = 0.0
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    """(operation, finding) -> the first report of it, with the request that reproduces it."""

    def summary(self) -> str:
        return (f"{self.name}: {self.cases} cases in {self.seconds:.1f} s, {self.refused} refused, "
                f"{self.server_errors} 5xx, {len(self.failures)} distinct failures")


@dataclass
class Caller:
    """Sends cases with one bearer token and checks each answer."""

    headers: dict[str, str]
    writes: ApiWrites
    session: requests.Session = field(default_factory=requests.Session)

    def send(self, run: Run, case: Case[Any]) -> None:
        before = self.writes.count()
        response = case.call(base_url=run.url, session=self.session, headers=self.headers,
                             timeout=REQUEST_TIMEOUT)
        run.cases += 1
        run.refused += refusal(response) is not None
        run.server_errors += response.status_code >= 500
        checks = [*run.checks, nothing_written_when_refused(self.writes, before)]
        try:
            case.validate_response(response, checks=checks, headers=self.headers,
                                   transport_kwargs={"base_url": run.url})
        except FailureGroup as failed:
            for failure in failed.exceptions:
                run.failures.setdefault((case.operation.label, finding(failure)), str(failed))


def fuzz(run: Run, cases: Callable[[st.DataObject], Case[Any]], examples: int, caller: Caller) -> None:
    """Sends `examples` cases drawn with a fixed seed; failures are collected as they come, never shrunk."""

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(st.data())
    def each(data: st.DataObject) -> None:
        caller.send(run, cases(data))

    started = time.monotonic()
    each()
    run.seconds = time.monotonic() - started


# ------------------------------------------------------------------------------------------- real ids


@dataclass(frozen=True)
class Known:
    """Real ids mixed into what is generated, so that requests reach past the id parser."""

    customers: tuple[str, str]
    """The customer who fuzzes (when a customer does), and another one."""
    products: tuple[str, ...]
    prices: tuple[str, ...]
    orders: tuple[str, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return (*self.customers, *self.products, *self.orders)


TOKENS: Final = Settings(_env_file=None, auth_jwt_secret=SECRET)
"""What the test mints tokens with: the secret the server is started with."""


def graphql(base: str, query: str, variables: dict[str, Any], headers: dict[str, str]) -> Any:
    answer = httpx.post(f"{base}/graphql", json={"query": query, "variables": variables}, headers=headers,
                        timeout=REQUEST_TIMEOUT)
    return answer.json()["data"]


def seeded(base: str, writes: ApiWrites) -> Known:
    """Two orders of the fuzzing customer and two of another's, placed before the fuzz.

    The counts of what the API writes must see them, or the fuzz could not see a refusal that writes.
    """
    customers = (uuid4(), uuid4())
    catalogue = httpx.post(f"{base}/graphql", json={"query": "{ products { id price } }"}).json()
    products = catalogue["data"]["products"]
    before, orders = writes.count(), []
    for index, owner in enumerate(customers * 2):
        order = {"items": [{"productId": products[index]["id"], "quantity": 1}], "shippingAddress": ADDRESS}
        placed = graphql(base, PLACE, {"input": order}, tokens.customer(TOKENS, owner))["placeOrder"]
        assert placed["errors"] == [], placed
        orders.append(placed["order"]["id"])
    assert writes.count() - before == Counter({PLACED: 4})
    assert writes.count()[RESTOCKED] >= len(products), "the catalogue is stocked when the server starts"
    return Known(customers=(str(customers[0]), str(customers[1])), products=tuple(p["id"] for p in products),
                 prices=tuple(p["price"] for p in products), orders=tuple(orders))


# ------------------------------------------------------------------------------------------- strategies


def both_modes(schema: BaseSchema) -> st.SearchStrategy[Case[Any]]:
    return st.one_of(schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE))


def graphql_cases(schema: BaseSchema, known: Known) -> Callable[[st.DataObject], Case[Any]]:
    """Valid and invalid operations; an ID is often a real one, and a Decimal often a real price."""
    texts = st.text(max_size=60).map(nodes.String)
    # Registered for the whole process: only this module has schemathesis generate GraphQL.
    schemathesis.graphql.scalar("ID", st.one_of(
        st.sampled_from(known.ids).map(nodes.String), texts, st.integers(-(2**31), 2**31 - 1).map(nodes.Int)))
    numbers = st.from_regex(r"-?\d{1,30}(\.\d{1,30})?([eE][+-]?\d{1,12})?", fullmatch=True)
    schemathesis.graphql.scalar("Decimal", st.one_of(
        st.sampled_from(known.prices).map(nodes.String), numbers.map(nodes.String), texts))
    strategy = both_modes(schema)
    return lambda data: data.draw(strategy)


def rest_cases(schema: BaseSchema, known: Known) -> Callable[[st.DataObject], Case[Any]]:
    """Valid and invalid requests; a valid one's ids are real ones half of the time.

    An invalid case keeps what was generated: a real id put in place of the
    invalid part would make it valid, and its acceptance a false alarm.
    """
    strategy = both_modes(schema)
    real = {"order_id": st.sampled_from(known.orders), "customer_id": st.sampled_from(known.customers)}
    # A generated price rarely equals the catalogue's, and refuses the whole order when it does not.
    real_item = st.sampled_from([
        {"product_id": product, **price}
        for product, catalogue_price in zip(known.products, known.prices, strict=True)
        for price in ({}, {"price": None}, {"price": catalogue_price})
    ])

    def draw(data: st.DataObject) -> Case[Any]:
        case: Case[Any] = data.draw(strategy)
        if case.meta is None or not case.meta.generation.mode.is_positive:
            return case
        for name in [name for name in case.path_parameters or {} if name in real]:
            if data.draw(st.booleans()):
                case.path_parameters[name] = data.draw(real[name])
        body = case.body
        if isinstance(body, dict) and data.draw(st.booleans()):
            body["customer_id"] = data.draw(real["customer_id"])
            items = body.get("items")
            for item in items if isinstance(items, list) else ():
                if isinstance(item, dict):
                    item.update(data.draw(real_item))
        return case

    return draw


# ------------------------------------------------------------------------------------------- the log


class Log:
    """The server's output, read as it comes: a pipe nobody reads stalls the server once it is full."""

    PROBLEM = re.compile(
        r"^(Traceback \(most recent call last\)|\S+ \S+ (ERROR|CRITICAL) |(ERROR|CRITICAL):)", re.ASCII)
    """A traceback, or a line logged at ERROR; an access-log line starts with INFO, whatever path it names."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.lines.append(line.decode(errors="replace").rstrip())

    def tail(self, lines: int = 60) -> str:
        self._reader.join(timeout=10)
        return "\n".join(self.lines[-lines:])

    def problems(self) -> list[str]:
        """Each ERROR line and traceback with the lines after it; call it once the server has exited."""
        self._reader.join(timeout=10)
        found = [at for at, line in enumerate(self.lines) if self.PROBLEM.match(line)]
        return ["\n".join(self.lines[at:at + 15]) for at in found]


# ------------------------------------------------------------------------------------------- the baseline


@dataclass(frozen=True)
class Baseline:
    """Findings that may stand, from `fuzz_baseline.toml`: harmless ones, and real ones awaiting a fix.

    An entry names a finding as `finding()` does, and the operation when it
    concerns one only. An awaiting entry must still be found: once its fix lands
    the fuzz fails until the entry is removed, so the file never outlives a defect.
    """

    harmless: list[dict[str, str]]
    awaiting_fix: list[dict[str, str]]

    @classmethod
    def load(cls) -> Baseline:
        entries = tomllib.loads(BASELINE.read_text(encoding="utf-8"))
        return cls(entries.get("harmless", []), entries.get("awaiting_fix", []))

    @staticmethod
    def covers(entry: dict[str, str], operation: str, found: str) -> bool:
        return entry["finding"] == found and entry.get("operation", operation) == operation

    def unexpected(self, runs: Iterable[Run]) -> list[str]:
        """Reports of the failures no entry covers, and the awaiting entries no failure showed any more."""
        entries = [*self.harmless, *self.awaiting_fix]
        found = {key: report for run in runs for key, report in run.failures.items()}
        reports = [f"{operation}: {name}\n{report}" for (operation, name), report in found.items()
                   if not any(self.covers(entry, operation, name) for entry in entries)]
        fixed = [entry for entry in self.awaiting_fix if not any(self.covers(entry, *key) for key in found)]
        return reports + [f"no longer found, so remove it from {BASELINE.name}: {entry}" for entry in fixed]


# ------------------------------------------------------------------------------------------- the test


@dataclass(frozen=True)
class Schemas:
    graphql: BaseSchema
    rest: BaseSchema


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    return Schemas(graphql=graphql_schema(), rest=rest_schema())


@pytest.mark.parametrize("role", [CUSTOMER, OPERATOR])
def test_fuzzed_requests_get_no_server_error_a_declared_answer_and_no_write_when_refused(
    role: str, schemas: Schemas, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    log: Log | None = None
    try:
        # `required` mode (a key is set), reproducible saga failures, and the log in the form `Log` reads.
        with embedded_server(tmp_path, AUTH_JWT_SECRET=SECRET, FAILURE_SEED=str(SEED), LOG_FORMAT="text",
                             LOG_LEVEL="INFO") as (base, process):
            log, writes = Log(process), ApiWrites(tmp_path / "data")
            known = seeded(base, writes)
            headers = (tokens.customer(TOKENS, UUID(known.customers[0])) if role == CUSTOMER
                       else tokens.operator(TOKENS))
            caller = Caller(headers, writes)
            graphql_run = Run(f"{role} GraphQL", f"{base}/graphql", GRAPHQL_CHECKS)
            fuzz(graphql_run, graphql_cases(schemas.graphql, known), GRAPHQL_EXAMPLES, caller)
            rest_run = Run(f"{role} REST", base, REST_CHECKS)
            fuzz(rest_run, rest_cases(schemas.rest, known), REST_EXAMPLES, caller)
    finally:
        if log is not None:  # shown when the test fails, a server that stopped answering included
            request.node.add_report_section("call", "server log (last lines)", log.tail())
    runs = [graphql_run, rest_run]
    print("\n" + "\n".join(run.summary() for run in runs))

    unexpected = Baseline.load().unexpected(runs)
    assert not unexpected, "\n\n".join([*(run.summary() for run in runs), *unexpected])
    assert log is not None
    problems = log.problems()
    assert not problems, "the server logged:\n" + "\n\n".join(problems)

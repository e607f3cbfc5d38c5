"""The GraphQL operation counter's name label stays bounded whatever names clients send."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from read_api.app import create_app
from read_api.metrics import OPERATION_NAMES, OperationNames
from tests.api_harness import ADMIN_TOKEN, RowsReadModel, api_client, graphql


@pytest.fixture
def system() -> Iterator[System]:
    with bootstrap(Settings(_env_file=None, database_url="memory://", admin_token=ADMIN_TOKEN)) as built:
        yield built


async def test_a_thousand_distinct_operation_names_leave_at_most_the_bound_of_label_values(
    system: System,
) -> None:
    app = create_app(system=system, read_model=RowsReadModel(), settings=system.settings)
    async with api_client(app) as client:
        await graphql(client, "query Catalogue { products { id } }")
        for i in range(1000):
            await graphql(client, f"query Q{i} {{ __typename }}")
        text = (await client.get("/metrics")).text

    names = set(re.findall(r'^graphql_operations_total\{name="([^"]*)"', text, flags=re.MULTILINE))
    assert len(names) <= OPERATION_NAMES + 1
    assert "Catalogue" in names and "other" in names
    assert 'graphql_operations_total{name="other",outcome="ok",type="query"} 951.0' in text


def test_a_name_is_kept_only_when_it_looks_like_one_and_its_operation_ran() -> None:
    names = OperationNames(2)

    assert names.label("Refused", keep=False) == "other"
    assert names.label("not a name!") == "other"
    assert [names.label("Orders"), names.label("Order"), names.label("Third")] == ["Orders", "Order", "other"]
    assert names.label("Orders", keep=False) == "Orders"

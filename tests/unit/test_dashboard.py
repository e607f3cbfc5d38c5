"""The saga dashboard: one page served beside the GraphQL API, which it talks to, over a system in memory."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from infra.bootstrap import System, bootstrap
from infra.settings import Settings
from read_api.app import create_app
from tests.api_harness import RowsReadModel, api_client


@pytest.fixture
def system() -> Iterator[System]:
    with bootstrap(Settings(_env_file=None, database_url="memory://")) as built:
        yield built


@pytest.fixture
async def client(system: System) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(system=system, read_model=RowsReadModel())) as http:
        yield http


async def test_the_dashboard_is_a_page_that_queries_graphql_and_subscribes_over_graphql_transport_ws(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '"/graphql"' in page.text
    assert '"graphql-transport-ws"' in page.text
    assert "orderUpdated" in page.text and "placeOrder" in page.text


async def test_the_dashboard_needs_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    page = (await client.get("/dashboard")).text
    assert "<script src" not in page and "<link" not in page
    assert "http://" not in page and "https://" not in page


async def test_the_root_redirects_to_the_dashboard(client: httpx.AsyncClient) -> None:
    answer = await client.get("/")
    assert answer.is_redirect
    assert answer.headers["location"] == "/dashboard"


async def test_an_app_without_the_graphql_api_serves_no_dashboard() -> None:
    async with api_client(create_app()) as http:
        assert (await http.get("/dashboard")).status_code == 404
        assert (await http.get("/")).status_code == 404


def constant(page: str, name: str) -> str:
    """The text of a template-literal constant of the page's script: `const NAME = `…`;`."""
    found = re.search(rf"const {name} = `([^`]*)`;", page)
    assert found, f"the page defines no {name}"
    return found.group(1)


async def test_the_stock_panel_lists_products_with_their_stock_and_a_restock_button_each(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/dashboard")).text
    assert 'id="stock"' in page and 'id="restock-all"' in page and "data-restock" in page
    products = constant(page, "PRODUCTS")
    assert "available" in products and "onHand" in products
    assert "restock(productId: $productId, quantity: $quantity)" in constant(page, "RESTOCK")
    assert "RESTOCK_UNITS = 100;" in page

"""The restock the saga dashboard sends, run against the system on its embedded store."""

from __future__ import annotations

import re

from infra.settings import Settings
from tests.api_harness import graphql, serving
from tests.saga_harness import MOUSE
from tests.tokens import admin, operator, requiring_tokens
from tests.unit.test_dashboard import constant


async def test_the_restock_the_dashboard_sends_adds_a_hundred_units_in_dev_mode_without_a_token(
    sqlite_settings: Settings,
) -> None:
    async with serving(sqlite_settings, roles=()) as served:
        restock = constant((await served.client.get("/dashboard")).text, "RESTOCK")
        answer = await graphql(served.client, restock, {"productId": str(MOUSE), "quantity": 100})
    assert answer["data"]["restock"]["errors"] == []
    assert answer["data"]["restock"]["product"] == {
        "id": str(MOUSE), "name": "Wireless Mouse", "available": 200, "onHand": 200}


async def test_in_required_mode_the_dashboards_restock_is_forbidden_to_an_operator_and_done_for_an_admin(
    sqlite_settings: Settings,
) -> None:
    settings = requiring_tokens(sqlite_settings)
    variables = {"productId": str(MOUSE), "quantity": 100}
    async with serving(settings, roles=()) as served:
        page = (await served.client.get("/dashboard")).text
        restock = constant(page, "RESTOCK")
        by_operator = await graphql(served.client, restock, variables, operator(settings))
        anonymous = await graphql(served.client, restock, variables)
        by_admin = await graphql(served.client, restock, variables, admin(settings))
    assert by_operator["data"] is None and by_operator["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert anonymous["data"] is None and anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert by_admin["data"]["restock"]["product"]["available"] == 200
    # What the page says to each refusal, instead of the GraphQL error.
    assert re.search(r'FORBIDDEN: "Restocking needs an admin token;', page)
    assert re.search(r'UNAUTHENTICATED: "Restocking needs an admin token', page)

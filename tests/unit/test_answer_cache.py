"""A kept answer of `order(id)` is as fresh as the read model, and is never another caller's."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest

from infra.bootstrap import bootstrap
from infra.settings import Settings
from read_api.app import create_app
from read_api.identity import mint_token
from tests.api_harness import RowsReadModel, api_client, graphql, order_row

pytestmark = pytest.mark.unit

ORDER = "query($id: ID!) { order(id: $id) { id status customerId payment { status } } }"


class Positions:
    """Where the read model stands, moved by hand as a projection would move it."""

    def __init__(self) -> None:
        self.at = 1

    async def __call__(self) -> int:
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
            first = await graphql(http, ORDER, {"id": str(order.id)}, headers)
            again = await graphql(http, ORDER, {"id": str(order.id)}, headers)
            assert first == again and rows.calls["orders_by_id"] == 1  # the second was the kept answer
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
            await graphql(http, ORDER, {"id": missing}, headers)
            await graphql(http, ORDER, {"id": missing}, headers)
    assert rows.calls["orders_by_id"] == 2  # neither answer was kept: the event store was asked

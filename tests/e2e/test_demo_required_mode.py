"""`saga demo` against a server that requires tokens: which token places orders, and which restocks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from infra.settings import Settings
from read_api.identity import ADMIN, CUSTOMER, OPERATOR, mint_token
from tests.e2e.test_demo import FOR_STOCK, ask, demo, drain, outcomes, without_failures
from tests.tokens import SECRET

NEEDS_ADMIN = "restocking needs an admin token (--token, saga token --admin)"
COUNT = "{ orders(first: 1) { totalCount } }"

pytestmark = pytest.mark.usefixtures("required")


@pytest.fixture
def required(monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers the test starts require tokens signed with SECRET."""
    monkeypatch.setenv("AUTH_JWT_SECRET", SECRET)


def token(*scopes: str, subject: str = "ops") -> str:
    settings = Settings(_env_file=None, auth_jwt_secret=SECRET)
    return mint_token(settings, subject=subject, scopes=list(scopes), ttl=timedelta(hours=1))


def test_in_required_mode_an_operator_token_places_orders_but_only_an_admin_token_restocks(
    tmp_path: Path,
) -> None:
    operator, admin = token(OPERATOR), token(OPERATOR, ADMIN, subject="admin")
    with without_failures(tmp_path) as base:
        drain(base, admin)
        by_operator = demo(base, "--orders", "12", "--restock", token=operator)
        by_admin = demo(base, "--orders", "12", "--restock", "--token", admin)
    assert by_operator.returncode == 0, by_operator.stdout + by_operator.stderr
    assert NEEDS_ADMIN in by_operator.stderr and "restocked" not in by_operator.stderr
    refused = outcomes(by_operator)
    assert refused["not placed"] == 0 and refused[FOR_STOCK] > 0, "it went on, without the stock"
    assert by_admin.returncode == 0, by_admin.stdout + by_admin.stderr
    assert "restocked" in by_admin.stderr and NEEDS_ADMIN not in by_admin.stderr
    restocked = outcomes(by_admin)
    assert (restocked["completed"], restocked[FOR_STOCK]) == (12, 0)


def test_in_required_mode_a_customer_token_places_every_order_for_itself_and_no_token_places_none(
    tmp_path: Path,
) -> None:
    customer, admin = str(uuid4()), token(OPERATOR, ADMIN, subject="admin")
    own = token(CUSTOMER, subject=customer)
    with without_failures(tmp_path) as base:
        anonymous = demo(base, "--orders", "3")
        after_anonymous = ask(base, COUNT, token=admin)["orders"]["totalCount"]
        as_customer = demo(base, "--orders", "5", token=own)
        everyone = ask(base, COUNT, token=admin)["orders"]["totalCount"]
        of_customer = ask(base, "query($c: ID!) { orders(customerId: $c, first: 1) { totalCount } }",
                          {"c": customer}, token=admin)["orders"]["totalCount"]
    assert anonymous.returncode == 1, anonymous.stdout + anonymous.stderr
    assert "needs a token to place orders" in anonymous.stderr and "SAGA_TOKEN" in anonymous.stderr
    assert after_anonymous == 0
    assert as_customer.returncode == 0, as_customer.stdout + as_customer.stderr
    assert outcomes(as_customer)["not placed"] == 0
    assert everyone == of_customer == 5

"""`saga forget CUSTOMER_ID`: the customer's address reads erased afterwards; an order in flight stops it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

import pytest
from typer.testing import CliRunner

from domain.privacy import ERASED
from infra.bootstrap import bootstrap, migrate
from infra.cli.main import app
from infra.settings import Settings
from process_managers.state import SagaStatus
from tests.saga_harness import finished, hear_catalogue, place, running

pytestmark = pytest.mark.integration

runner = CliRunner()


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The embedded default in a directory of the test's own, as the command line finds it."""
    for name in ("DATABASE_URL", "AMQP_URL", "DB_HOST", "RABBITMQ_URL", "RABBITMQ_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return Settings(data_dir=tmp_path / "data", database_url=None)


def saga(*args: str, answer: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=answer, env={"COLUMNS": "200"})
    return result.exit_code, result.output


async def completed_order(settings: Settings) -> tuple[UUID, str]:
    async with running(settings) as system:
        order_id = await asyncio.to_thread(place, system)
        assert (await finished(system, order_id)).status is SagaStatus.COMPLETED
        return order_id, str(system.orders.get_order(order_id).customer_id)


def test_saga_forget_erases_the_customer_s_address_once_and_says_so_the_second_time(
    settings: Settings,
) -> None:
    # The command runs its own event loop, as it does in a shell: this test has none running.
    order_id, customer = asyncio.run(completed_order(settings))

    assert saga("forget", customer, answer="n\n")[0] == 2  # asked, and refused: nothing forgotten
    with bootstrap(settings) as system:
        assert system.orders.get_order(order_id).shipping_address.city == "Springfield"

    status, output = saga("forget", customer, "--yes", "--by", "support ticket 4711")
    assert status == 0, output
    assert f"forgot customer {customer}: 1 order(s) erased" in output
    with bootstrap(settings) as system:
        order = system.orders.get_order(order_id)
        assert order.shipping_address.city == ERASED and order.personal_data_erased
        assert order.status.value == "COMPLETED"

    status, output = saga("forget", customer, "--yes")
    assert status == 0 and "forgotten before" in output


def test_saga_forget_stops_before_erasing_anything_when_an_order_stays_in_flight(settings: Settings) -> None:
    migrate(settings)
    with bootstrap(settings) as system:  # no role runs: the order stays as placed
        system.inventory.seed()
        hear_catalogue(system)  # as the relay and Orders' consumer would
        order_id = place(system)
        customer = system.orders.get_order(order_id).customer_id

    status, output = saga("forget", str(customer), "--yes", "--wait", "0.5")

    assert status == 1, output
    assert "did not end within 0.5 s" in output and str(order_id) in output
    with bootstrap(settings) as system:
        assert system.orders.get_order(order_id).shipping_address.city == "Springfield"
        assert system.personal_data is not None and system.personal_data.knows(customer)


def test_saga_forget_refuses_what_is_not_a_customer_id(settings: Settings) -> None:
    status, output = saga("forget", "alice", "--yes")
    assert status == 2 and "'alice' is not a customer id" in output

"""`saga retry ORDER_ID`: a stuck refund is sent again and the order ends cancelled; the rest is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from typer.testing import CliRunner

from domain.order import OrderStatus
from domain.payment import PaymentStatus
from infra.bootstrap import bootstrap
from infra.cli.main import app
from infra.settings import Settings
from process_managers.saga import OrderFulfillment
from process_managers.state import SagaStatus
from tests.fakes import FakeGateway
from tests.integration.test_access import written
from tests.integration.test_saga_needs_attention import RefundsFailUntilMended
from tests.saga_harness import KEYBOARD, MOUSE, finished, place, running, until

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


async def stuck_and_completed(settings: Settings) -> tuple[UUID, UUID]:
    """An order whose refund failed through every attempt, and an order that completed."""
    quick = settings.model_copy(update={"compensation_attempts": 2, "compensation_backoff_seconds": 0.3})
    async with running(quick, gateway=RefundsFailUntilMended()) as system:
        stuck = await asyncio.to_thread(place, system, (MOUSE, 2), (KEYBOARD, 31))
        completed = await asyncio.to_thread(place, system)
        assert (await finished(system, completed)).status is SagaStatus.COMPLETED

        def needs_attention() -> bool:
            found = system.sagas.find_saga(stuck)
            return found is not None and found.status is SagaStatus.NEEDS_ATTENTION

        await until(needs_attention, within=30)
        return stuck, completed


async def resumed(settings: Settings, order_id: UUID) -> FakeGateway:
    """The roles running again, the gateway mended: the saga goes on from the retry recorded."""
    gateway = FakeGateway()
    async with running(settings, gateway=gateway) as system:
        assert (await finished(system, order_id)).status is SagaStatus.COMPENSATED
        assert system.orders.get_order(order_id).status is OrderStatus.CANCELLED
        assert system.payments.get_payment(order_id).status is PaymentStatus.REFUNDED
    return gateway


def events_written(settings: Settings) -> int:
    with bootstrap(settings) as system:
        return written(system)


def test_saga_retry_resumes_a_stuck_refund_so_the_order_ends_cancelled_refunded_once(
    settings: Settings,
) -> None:
    # The command runs its own event loop, as it does in a shell: this test has none running.
    stuck, _ = asyncio.run(stuck_and_completed(settings))
    before = events_written(settings)

    assert saga("retry", str(stuck), answer="n\n")[0] == 2  # asked, and refused: nothing retried
    assert events_written(settings) == before
    status, output = saga("retry", str(stuck), "--yes", "--by", "gateway mended, ticket 4711")

    assert status == 0, output
    assert f"saga of order {stuck} resumed (COMPENSATING): the payment undo is sent again" in output
    with bootstrap(settings) as system:
        history = list(system.sagas.events.get(OrderFulfillment.create_id(stuck)))
        [retry] = [e for e in history if isinstance(e, OrderFulfillment.CompensationResumed)]
        assert retry.requested_by == "gateway mended, ticket 4711"
    gateway = asyncio.run(resumed(settings, stuck))
    assert len(gateway.returned) == 1, "refunded exactly once"


def test_saga_retry_refuses_a_saga_that_needs_no_attention_an_unknown_order_and_a_bad_id(
    settings: Settings,
) -> None:
    stuck, completed = asyncio.run(stuck_and_completed(settings))
    before = events_written(settings)

    fine = saga("retry", str(completed), "--yes")
    unknown = str(uuid4())
    nowhere = saga("retry", unknown, "--yes")
    bad = saga("retry", "alice", "--yes")

    assert fine[0] == 1 and "is COMPLETED; only a saga that NEEDS_ATTENTION can be retried" in fine[1], fine
    assert "(ORDER_ID)" in fine[1]
    assert nowhere[0] == 4 and f"no saga for order {unknown} (ORDER_ID)" in nowhere[1], nowhere
    assert bad[0] == 2 and "'alice' is not an order id" in bad[1], bad
    assert events_written(settings) == before
    with bootstrap(settings) as system:
        assert system.sagas.get_saga(stuck).status is SagaStatus.NEEDS_ATTENTION

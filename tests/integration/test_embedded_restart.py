"""The embedded default stopped and started again loses nothing: its sagas go on where they were."""

from __future__ import annotations

from uuid import UUID

from commands.simulation import ChargeResult
from domain.values import Money
from infra.messaging.in_process import InProcessBus
from infra.settings import Settings
from process_managers.state import SagaStatus
from tests.fakes import FakeGateway
from tests.saga_harness import MOUSE, finished, place, running, until


class DownGateway(FakeGateway):
    """A payment gateway that cannot be reached: every charge fails before it is made."""

    def charge(self, *, order_id: UUID, customer_id: UUID, amount: Money) -> ChargeResult:
        self.charge_calls += 1
        raise ConnectionError("the payment gateway is unreachable")


async def test_an_order_whose_charge_waits_for_a_retry_completes_after_a_restart(
    sqlite_settings: Settings,
) -> None:
    path = sqlite_settings.data_dir / "bus.sqlite"
    down = DownGateway()
    async with running(sqlite_settings, InProcessBus(path, retry_delays=(0.3,)), gateway=down) as system:
        order_id = place(system, (MOUSE, 1))
        await until(lambda: down.charge_calls == 1)  # the charge command now waits for its retry
        total = system.orders.get_order(order_id).total

    gateway = FakeGateway()
    async with running(sqlite_settings, InProcessBus(path, retry_delays=(0.3,)), gateway=gateway) as system:
        saga = await finished(system, order_id, within=10)

    assert saga.status is SagaStatus.COMPLETED
    assert gateway.taken == [total]
    assert down.charge_calls == 1

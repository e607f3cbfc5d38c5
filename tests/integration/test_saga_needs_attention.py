"""A refund that keeps failing leaves its saga NEEDS_ATTENTION, counted; an operator's retry finishes it."""

from __future__ import annotations

import threading
from uuid import UUID

from prometheus_client import generate_latest

from domain.order import OrderStatus
from domain.payment import PaymentStatus
from domain.values import Money
from infra.observability.metrics import SagaMetrics
from process_managers.state import SagaStatus
from process_managers.steps import StepName
from tests.fakes import FakeGateway
from tests.saga_harness import KEYBOARD, MOUSE, Stack, finished, place, running, until


class RefundsFailUntilMended(FakeGateway):
    """Charges as ever; every refund raises until `mend()`, as a gateway that is down would."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = threading.Event()
        self.broken.set()
        self.refund_attempts = 0

    def refund(self, *, transaction_id: str, amount: Money, key: UUID) -> str:
        self.refund_attempts += 1
        if self.broken.is_set():
            raise ConnectionError("the gateway's refund service is down")
        return super().refund(transaction_id=transaction_id, amount=amount, key=key)

    def mend(self) -> None:
        self.broken.clear()


async def test_a_refund_that_keeps_failing_needs_attention_and_a_retry_cancels_the_order_refunding_once(
    stack: Stack,
) -> None:
    settings, bus = stack
    settings = settings.model_copy(update={"compensation_attempts": 2, "compensation_backoff_seconds": 0.3})
    gateway, metrics = RefundsFailUntilMended(), SagaMetrics()
    # Exported at 0 before any saga is stuck, so that an alert on its increase has a series to watch.
    assert b'saga_outcomes_total{outcome="needs_attention"} 0.0' in generate_latest(metrics.registry)
    async with running(settings, bus, gateway=gateway, metrics=metrics) as system:
        order_id = place(system, (MOUSE, 2), (KEYBOARD, 31))  # charged, then the stock is short: refund
        sagas = system.sagas

        def stuck() -> bool:
            saga = sagas.find_saga(order_id)
            return saga is not None and saga.status is SagaStatus.NEEDS_ATTENTION

        await until(stuck, within=30)
        saga = sagas.get_saga(order_id)
        assert saga.state.step(StepName.PAYMENT).undo_attempts == 2
        assert system.orders.get_order(order_id).status is not OrderStatus.CANCELLED  # still in flight
        assert gateway.returned == []
        await until(lambda: b'saga_outcomes_total{outcome="needs_attention"} 1.0'
                    in generate_latest(metrics.registry), within=10)

        gateway.mend()
        sagas.retry_saga(order_id)
        saga = await finished(system, order_id)

        assert saga.status is SagaStatus.COMPENSATED
        assert system.orders.get_order(order_id).status is OrderStatus.CANCELLED
        payment = system.payments.get_payment(order_id)
        assert payment.status is PaymentStatus.REFUNDED
        assert gateway.returned == gateway.taken  # refunded exactly once, however often it was asked

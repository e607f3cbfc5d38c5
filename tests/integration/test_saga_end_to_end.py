"""Orders through the whole saga: relays, the bus, every context and the process manager."""

from __future__ import annotations

from commands.audit.timeline import history
from commands.orders import RequestCancellation
from domain.order import OrderStatus
from domain.payment import PaymentStatus
from domain.reservation import ReservationStatus
from domain.shipment import ShipmentStatus
from process_managers.state import SagaStatus
from tests.fakes import FakeCarrier, FakeGateway, FakeNotifier
from tests.saga_harness import KEYBOARD, LAPTOP, MOUSE, Stack, finished, place, running, step_status, until


async def test_a_happy_order_is_charged_reserved_shipped_notified_and_completed(
    stack: Stack,
) -> None:
    gateway = FakeGateway()
    async with running(*stack, gateway=gateway, carrier=FakeCarrier(),
                       notifier=FakeNotifier()) as system:
        order_id = place(system, (LAPTOP, 2), (MOUSE, 1))
        saga = await finished(system, order_id)

        assert saga.status is SagaStatus.COMPLETED
        assert system.orders.get_order(order_id).status is OrderStatus.COMPLETED
        assert system.payments.get_payment(order_id).status is PaymentStatus.COMPLETED
        assert gateway.taken == [system.orders.get_order(order_id).total]
        assert system.inventory.find_reservation(order_id).status is ReservationStatus.COMMITTED  # type: ignore[union-attr]
        assert system.inventory.get_stock(LAPTOP).on_hand == 50 - 2
        assert system.inventory.get_stock(LAPTOP).reserved == 0
        shipment = system.shipping.get_shipment(order_id)
        assert shipment.status is ShipmentStatus.PREPARING
        assert shipment.address is not None and shipment.address.zip_code == "62701"


async def test_a_declined_payment_cancels_the_order_and_touches_no_stock(stack: Stack) -> None:
    async with running(*stack, gateway=FakeGateway(decline="card declined")) as system:
        order_id = place(system, (MOUSE, 3))
        saga = await finished(system, order_id)

        assert saga.status is SagaStatus.COMPENSATED
        assert system.orders.get_order(order_id).status is OrderStatus.CANCELLED
        assert system.payments.get_payment(order_id).status is PaymentStatus.FAILED
        assert system.inventory.find_reservation(order_id) is None
        assert system.inventory.get_stock(MOUSE).available == 100


async def test_a_multi_line_order_with_one_short_line_reserves_nothing_and_is_refunded(
    stack: Stack,
) -> None:
    gateway = FakeGateway()
    async with running(*stack, gateway=gateway) as system:
        order_id = place(system, (MOUSE, 2), (KEYBOARD, 31))
        saga = await finished(system, order_id)

        assert saga.status is SagaStatus.COMPENSATED
        assert system.orders.get_order(order_id).status is OrderStatus.CANCELLED
        assert system.payments.get_payment(order_id).status is PaymentStatus.REFUNDED
        assert gateway.returned == gateway.taken
        assert system.inventory.get_stock(MOUSE).available == 100
        assert system.inventory.get_stock(KEYBOARD).available == 30


async def test_a_failed_shipment_releases_the_stock_and_refunds_the_payment(
    stack: Stack,
) -> None:
    gateway = FakeGateway()
    async with running(*stack, gateway=gateway, carrier=FakeCarrier(refuse="no courier")) as system:
        order_id = place(system, (LAPTOP, 1))
        saga = await finished(system, order_id)

        assert saga.status is SagaStatus.COMPENSATED
        assert system.orders.get_order(order_id).status is OrderStatus.CANCELLED
        assert system.inventory.find_reservation(order_id).status is ReservationStatus.RELEASED  # type: ignore[union-attr]
        assert system.inventory.get_stock(LAPTOP).available == 50
        assert system.payments.get_payment(order_id).status is PaymentStatus.REFUNDED
        assert gateway.returned == gateway.taken


async def test_a_failed_notification_does_not_stop_the_order_completing(stack: Stack) -> None:
    async with running(*stack, notifier=FakeNotifier(fail="mailbox full")) as system:
        order_id = place(system)
        saga = await finished(system, order_id)

        assert saga.status is SagaStatus.COMPLETED
        assert system.orders.get_order(order_id).status is OrderStatus.COMPLETED


async def test_a_step_that_times_out_is_compensated_and_its_late_charge_refunded(
    stack: Stack,
) -> None:
    gateway = FakeGateway(delay=2.5)
    settings, bus = stack
    fast_deadlines = settings.model_copy(update={"step_timeout_seconds": 1})
    async with running(fast_deadlines, bus, gateway=gateway) as system:
        order_id = place(system)
        saga = await finished(system, order_id)

        assert saga.status is SagaStatus.COMPENSATED
        decisions = [event.type for event in history(system.sagas, saga.id)]
        assert "OrderFulfillment.StepTimedOut" in decisions
        assert system.orders.get_order(order_id).status is OrderStatus.CANCELLED
        assert system.payments.get_payment(order_id).status is PaymentStatus.REFUNDED
        assert gateway.taken and gateway.returned == gateway.taken
        assert system.inventory.find_reservation(order_id) is None


async def test_a_cancellation_while_shipping_is_in_flight_undoes_every_step(
    stack: Stack,
) -> None:
    gateway = FakeGateway()
    async with running(*stack, gateway=gateway, carrier=FakeCarrier(delay=1.0)) as system:
        order_id = place(system, (LAPTOP, 1))
        await until(lambda: step_status(system, order_id, "shipping") == "REQUESTED")
        system.orders.request_cancellation(RequestCancellation(order_id=order_id, reason="changed my mind"))
        saga = await finished(system, order_id)

        assert saga.status is SagaStatus.COMPENSATED
        assert system.orders.get_order(order_id).status is OrderStatus.CANCELLED
        assert system.shipping.get_shipment(order_id).status is ShipmentStatus.CANCELLED
        assert system.inventory.get_stock(LAPTOP).available == 50
        assert gateway.returned == gateway.taken

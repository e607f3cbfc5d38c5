"""Each context writes one INFO line per command it handles, saying what became of it, with its ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Tracking

from commands.payments import ChargePayment, Payments, RefundPayment
from domain.base import DomainError
from infra.eventstore.persistence import application_env
from infra.observability.logs import log_handler
from infra.settings import Settings
from process_managers.application import Sagas
from tests.fakes import FakeGateway
from tests.sagas import Order


@pytest.fixture
def payments(memory_settings: Settings) -> Iterator[Payments]:
    app = Payments(application_env(memory_settings, "Payments"), gateway=FakeGateway())
    yield app
    app.close()


@pytest.fixture
def lines(payments: Payments) -> Iterator[io.StringIO]:
    """What the payments context logs, as JSON lines, at INFO and above."""
    out = io.StringIO()
    handler = log_handler(json=True)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    logger, level = payments.logger, payments.logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(level)


def parsed(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def charge(order_id: UUID) -> ChargePayment:
    return ChargePayment(order_id=order_id, customer_id=uuid4(), amount=Decimal("10.00"))


def test_a_handled_command_writes_one_info_line_with_its_outcome_and_ids(
    payments: Payments, lines: io.StringIO
) -> None:
    order_id = uuid4()
    command = charge(order_id)
    payments.handle(command)
    [line] = parsed(lines)
    assert line["level"] == "INFO" and line["logger"] == "commands.payments"
    assert line["message"] == "Payments handled ChargePayment: recorded Payment.Charged"
    assert line["correlation_id"] == str(order_id)
    assert line["causation_id"] == f"command:{command.command_id}"


def test_a_repeated_command_writes_one_line_saying_so(payments: Payments, lines: io.StringIO) -> None:
    command = charge(uuid4())
    payments.handle(command)
    payments.handle(command)
    messages = [line["message"] for line in parsed(lines)]
    assert messages == ["Payments handled ChargePayment: recorded Payment.Charged",
                        "Payments handled ChargePayment: a repeat, already handled"]


def test_a_refused_command_writes_one_line_naming_the_refusal(payments: Payments, lines: io.StringIO) -> None:
    order_id = uuid4()
    payments.handle(charge(order_id))
    excessive = RefundPayment(order_id=order_id, amount=Decimal("99.00"), reason="too much")
    with pytest.raises(DomainError) as refused:
        payments.handle(excessive)
    last = parsed(lines)[-1]
    assert last["message"].startswith(f"Payments handled RefundPayment: refused, {refused.value.code}: ")
    assert last["causation_id"] == f"command:{excessive.command_id}"


def test_in_a_batch_each_command_gets_its_own_line_once_the_batch_is_saved(
    payments: Payments, lines: io.StringIO
) -> None:
    order_id = uuid4()
    first = charge(order_id)
    second = RefundPayment(order_id=order_id, amount=None, reason="customer cancelled")
    with payments.unit_of_work():
        payments.handle(first)
        payments.handle(second)
        assert parsed(lines) == []  # nothing is said before the batch is saved
    said = [(line["causation_id"], line["message"]) for line in parsed(lines)]
    assert said == [
        (f"command:{first.command_id}", "Payments handled ChargePayment: recorded Payment.Charged"),
        (f"command:{second.command_id}", "Payments handled RefundPayment: recorded Payment.Refunded"),
    ]


def test_the_saga_writes_its_own_one_line_per_event_it_hears_and_no_second(memory_settings: Settings) -> None:
    sagas = Sagas(application_env(memory_settings, "OrderFulfillment"))
    out = io.StringIO()
    handler = log_handler(json=True)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    logger = logging.getLogger("process_managers")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    order = Order.new()
    try:
        sagas.handle_event(order.placed(), Tracking("Orders", 1))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        sagas.close()
    [line] = parsed(out)
    assert line["message"] == "saga heard OrderPlaced; decided Started, StepRequested"
    assert (line["correlation_id"], line["causation_id"]) == (str(order.order_id), "Orders:1")

"""The audit of one order: every event of all its streams, merged in recorded order and chained by cause."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from rich.console import Console
from typer.testing import CliRunner

from commands.audit.summaries import Flag
from commands.audit.timeline import TimelineEntry, find_stream, timeline
from commands.orders import OrderNotFoundError
from commands.payments import ChargePayment
from domain.product import Product
from infra.bootstrap import bootstrap
from infra.cli.main import ExitCode, app
from infra.cli.timeline_table import timeline_table
from infra.settings import Settings
from tests.fakes import FakeCarrier, FakeGateway
from tests.saga_harness import LAPTOP, MOUSE, finished, hear_catalogue, place, running

runner = CliRunner()

EVERY_STREAM = {"order", "payment", "reservation", "shipment", "notification", "saga"}
APPLICATION_OF = {"order": "Orders", "payment": "Payments", "reservation": "Inventory",
                  "shipment": "Shipping", "notification": "Notifications"}


def first(entries: list[TimelineEntry], event_type: str, **data: object) -> TimelineEntry:
    return next(e for e in entries if e.type == event_type and data.items() <= e.data.items())


def assert_in_order(entries: list[TimelineEntry], *event_types: str) -> None:
    positions = [entries.index(first(entries, event_type)) for event_type in event_types]
    assert positions == sorted(positions), [entries[p].type for p in sorted(positions)]


def cause_of(entries: list[TimelineEntry], entry: TimelineEntry) -> TimelineEntry:
    assert entry.cause is not None, f"{entry.type} has no cause in the timeline"
    where = (entry.cause.stream_id, entry.cause.version)
    return next(e for e in entries if (e.stream_id, e.version) == where)


def assert_one_story(entries: list[TimelineEntry], order_id: UUID) -> None:
    """Every event names the order, and each one after the placement has a cause told before it.

    A context acts on a command a saga decision carried, and names that command; the saga
    decides on hearing a context's event, and names its place in that context's log.
    """
    assert [e.correlation_id for e in entries] == [order_id] * len(entries)
    placed, *rest = entries
    assert (placed.type, placed.cause) == ("Order.Placed", None)
    for entry in rest:
        cause = cause_of(entries, entry)
        assert entries.index(cause) < entries.index(entry)
        if entry.stream == "saga":
            assert cause.stream != "saga"
            assert re.fullmatch(rf"{APPLICATION_OF[cause.stream]}:\d+", entry.causation_id or "")
        else:
            assert cause.stream == "saga"
            assert entry.causation_id == f"command:{cause.data['command']['command_id']}"


async def test_a_completed_order_is_told_from_every_stream_in_causal_order(sqlite_settings: Settings) -> None:
    async with running(sqlite_settings) as system:
        order_id = place(system, (LAPTOP, 2), (MOUSE, 1))
        await finished(system, order_id)
        entries = timeline(system, order_id)

    assert {e.stream for e in entries} == EVERY_STREAM
    assert_in_order(entries, "Order.Placed", "Payment.Charged", "Reservation.Reserved", "Shipment.Created",
                    "Reservation.Committed", "Notification.Sent", "Order.Completed",
                    "OrderFulfillment.Completed")
    assert_one_story(entries, order_id)
    charge = cause_of(entries, first(entries, "Payment.Charged"))
    assert (charge.type, charge.data["step"]) == ("OrderFulfillment.StepRequested", "payment")
    assert cause_of(entries, first(entries, "OrderFulfillment.StepRequested", step="inventory")).type == (
        "Payment.Charged"
    )
    # One command's events, in two streams' worth of aggregates, share its cause.
    assert first(entries, "Reservation.Opened").cause == first(entries, "Reservation.Reserved").cause
    assert [e.type for e in entries if e.flag] == ["Order.Completed", "OrderFulfillment.Completed"]


async def test_a_declined_payment_is_told_from_the_decline_to_the_cancellation(
    sqlite_settings: Settings,
) -> None:
    async with running(sqlite_settings, gateway=FakeGateway(decline="card declined")) as system:
        order_id = place(system, (MOUSE, 3))
        await finished(system, order_id)
        entries = timeline(system, order_id)

    assert {e.stream for e in entries} == {"order", "payment", "saga"}
    assert_in_order(entries, "Order.Placed", "Payment.Declined", "OrderFulfillment.StepFailed",
                    "Order.Cancelled", "OrderFulfillment.Compensated")
    assert_one_story(entries, order_id)
    declined = first(entries, "Payment.Declined")
    assert "card declined" in declined.summary
    assert [e.type for e in entries if e.flag is Flag.FAILURE] == [
        "Payment.Declined", "OrderFulfillment.StepFailed"
    ]


async def test_a_failed_shipment_is_told_with_its_compensations_in_reverse_order(
    store_settings: Settings,
) -> None:
    async with running(store_settings, carrier=FakeCarrier(refuse="no courier")) as system:
        order_id = place(system, (LAPTOP, 1))
        await finished(system, order_id)
        entries = timeline(system, order_id)

    assert {e.stream for e in entries} == EVERY_STREAM - {"notification"}
    assert_in_order(entries, "Payment.Charged", "Reservation.Reserved", "Shipment.Failed",
                    "Reservation.Released", "Payment.Refunded", "Order.Cancelled",
                    "OrderFulfillment.Compensated")
    assert_one_story(entries, order_id)
    # The refund was asked for only once the release was confirmed.
    refund_request = cause_of(entries, first(entries, "Payment.Refunded"))
    assert refund_request.type == "OrderFulfillment.CompensationRequested"
    assert refund_request.data["step"] == "payment"
    assert cause_of(entries, refund_request).type == "Reservation.Released"
    assert {"Shipment.Failed", "Reservation.Released", "Payment.Refunded"} <= {
        e.type for e in entries if e.flag in (Flag.FAILURE, Flag.COMPENSATION)
    }


def test_an_unknown_order_has_no_timeline(sqlite_settings: Settings) -> None:
    with bootstrap(sqlite_settings) as system, pytest.raises(OrderNotFoundError) as raised:
        timeline(system, uuid4())
    assert raised.value.field == "order_id"


def test_any_stream_is_found_in_the_application_that_holds_it(sqlite_settings: Settings) -> None:
    with bootstrap(sqlite_settings, gateway=FakeGateway()) as system:
        system.inventory.seed()
        hear_catalogue(system)  # as the relay and Orders' consumer would
        order_id = place(system)
        charge = ChargePayment(order_id=order_id, customer_id=uuid4(), amount=Decimal("49.99"))
        system.payments.charge_payment(charge)
        payment_id = system.payments.get_payment(order_id).id

        heard = Product.create_id(MOUSE)  # what Orders heard of the mouse, in a stream of its own
        streams = (order_id, payment_id, MOUSE, heard)
        found = {stream_id: find_stream(system, stream_id) for stream_id in streams}
        assert find_stream(system, uuid4()) is None

    assert {stream_id: (f.application.name, f.aggregate) for stream_id, f in found.items() if f} == {
        order_id: ("Orders", "Order"),
        payment_id: ("Payments", "Payment"),
        MOUSE: ("Inventory", "Stock"),
        heard: ("Orders", "Product"),
    }


async def _failed_shipment(settings: Settings) -> UUID:
    async with running(settings, carrier=FakeCarrier(refuse="no courier")) as system:
        order_id = place(system, (LAPTOP, 1))
        await finished(system, order_id)
    return order_id


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, UUID]:
    """A data directory holding one order whose shipment failed, for the command line to read."""
    data_dir = tmp_path_factory.mktemp("audit") / "data"
    settings = Settings(_env_file=None, database_url=None, data_dir=data_dir)
    return data_dir, asyncio.run(_failed_shipment(settings))


@pytest.fixture
def cli_data_dir(audited: tuple[Path, UUID], monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DATABASE_URL", "DB_HOST", "AMQP_URL", "RABBITMQ_URL", "RABBITMQ_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(audited[0]))
    monkeypatch.setenv("COLUMNS", "200")
    return audited[0]


def test_saga_audit_prints_the_timeline_as_a_table(cli_data_dir: Path, audited: tuple[Path, UUID]) -> None:
    order_id = audited[1]
    result = runner.invoke(app, ["audit", str(order_id)])

    assert result.exit_code == 0, result.output
    assert str(order_id) in result.stdout
    for column in ("time", "stream", "version", "event", "correlation", "causation", "summary"):
        assert column in result.stdout
    for event_type in ("Order.Placed", "Payment.Charged", "Shipment.Failed", "Payment.Refunded"):
        assert event_type in result.stdout
    assert "no courier" in result.stdout
    assert "saga v" in result.stdout  # causes are named by their event, not only by id


def test_saga_audit_json_prints_one_event_per_line(cli_data_dir: Path, audited: tuple[Path, UUID]) -> None:
    order_id = audited[1]
    result = runner.invoke(app, ["audit", str(order_id), "--json"])

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["type"] == "Order.Placed"
    assert {line["correlation_id"] for line in lines} == {str(order_id)}
    with bootstrap(Settings(_env_file=None, database_url=None, data_dir=cli_data_dir)) as system:
        assert [line["type"] for line in lines] == [e.type for e in timeline(system, order_id)]


@pytest.mark.parametrize("argument", ["not-an-order", str(uuid4())], ids=["malformed", "unknown"])
def test_saga_audit_of_a_malformed_or_unknown_order_id_fails_naming_the_argument(
    cli_data_dir: Path, argument: str
) -> None:
    result = runner.invoke(app, ["audit", argument])

    # A malformed id is a usage error; a well-formed one that names no order is "not found".
    assert result.exit_code == (ExitCode.USAGE if argument == "not-an-order" else ExitCode.NOT_FOUND)
    assert "ORDER_ID" in result.output
    assert argument in result.output


@pytest.mark.parametrize("width", [80, 200])
def test_the_audit_table_fits_its_width_with_each_type_and_id_whole(
    audited: tuple[Path, UUID], width: int
) -> None:
    data_dir, order_id = audited
    with bootstrap(Settings(_env_file=None, database_url=None, data_dir=data_dir)) as system:
        entries = timeline(system, order_id)
    console = Console(width=width, record=True)

    console.print(timeline_table(order_id, entries, console.width))

    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= width
    for event_type in {entry.type for entry in entries}:
        assert any(re.search(rf"(^|\s){re.escape(event_type)}(\s|$)", line) for line in lines), event_type
    assert sum(str(order_id) in line for line in lines) == 1  # whole, once, in the title
    for stream_id in {entry.stream_id for entry in entries}:  # each stream's short id, never cut
        assert any(re.search(rf"\b{stream_id.hex[:8]}\b", line) for line in lines), stream_id


def test_saga_audit_in_a_pipe_keeps_to_80_columns(audited: tuple[Path, UUID]) -> None:
    data_dir, order_id = audited
    unset = ("DATABASE_URL", "DB_HOST", "AMQP_URL", "COLUMNS", "LINES")
    environment = {k: v for k, v in os.environ.items() if k not in unset} | {"DATA_DIR": str(data_dir)}

    piped = subprocess.run([sys.executable, "-m", "infra.cli", "audit", str(order_id)], env=environment,
                           capture_output=True, text=True, timeout=60)  # stdout is a pipe, as in `| cat`

    assert piped.returncode == 0, piped.stderr
    assert "Shipment.Failed" in piped.stdout and str(order_id) in piped.stdout
    assert max(len(line) for line in piped.stdout.splitlines()) <= 80

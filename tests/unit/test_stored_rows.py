"""The JSON columns of the read tables, as stored: rows written before a release still read after it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import orjson
import pytest

from projections import saga_progress
from projections.order_summary import OrderLine, OrderRecord, OrderSummary
from projections.read_model import AddressRow, SagaRow, SagaStepRow, SagaTimelineEntry
from projections.saga_progress import SagaProgress
from projections.store import json_text

SAGA, ORDER, PRODUCT = (UUID(int=n) for n in (1, 2, 3))
AT = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
ADDRESS = AddressRow(street="1 Main St", city="Springfield", state="IL", zip_code="62701", country="US")


def stored(values: tuple[object, ...], column: int) -> object:
    return orjson.loads(json_text(values[column]))


def test_a_saga_row_stores_its_steps_and_timeline_under_the_keys_it_always_had() -> None:
    row = SagaRow(
        id=SAGA, order_id=ORDER, status="RUNNING", current_step="payment",
        steps=(SagaStepRow("payment", "REQUESTED", 2), SagaStepRow("inventory", "PENDING", 0)),
        updated_at=AT,
        timeline=(SagaTimelineEntry(1, "Started", None, "1 line(s), 9.99 USD", AT.replace(microsecond=0)),
                  SagaTimelineEntry(2, "StepRequested", "payment", "attempt 2: ChargePayment", AT)),
    )
    projection = SagaProgress()
    values = projection.encode(row)
    assert stored(values, 4) == [
        {"name": "payment", "status": "REQUESTED", "attempts": 2},
        {"name": "inventory", "status": "PENDING", "attempts": 0},
    ]
    assert stored(values, 5) == [
        {"version": 1, "type": "Started", "step": None, "detail": "1 line(s), 9.99 USD",
         "recorded_at": "2026-05-04T03:02:01+00:00"},
        {"version": 2, "type": "StepRequested", "step": "payment", "detail": "attempt 2: ChargePayment",
         "recorded_at": "2026-05-04T03:02:01.123456+00:00"},
    ]
    assert projection.decode(dict(zip(projection.table.column_names, (
        values[0], values[1], values[2], values[3], json_text(values[4]), json_text(values[5]), values[6],
    ), strict=True))) == row


def test_a_saga_row_read_back_decodes_its_timeline_only_when_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entries = (SagaTimelineEntry(1, "Started", None, "1 line(s), 9.99 USD", AT),
               SagaTimelineEntry(2, "StepRequested", "payment", "attempt 1: ChargePayment", AT))
    row = SagaRow(id=SAGA, order_id=ORDER, status="RUNNING", current_step="payment",
                  steps=(SagaStepRow("payment", "REQUESTED", 1),), updated_at=AT, timeline=entries)
    projection = SagaProgress()
    values = projection.encode(row)
    record = dict(zip(projection.table.column_names, (*values[:4], json_text(values[4]), json_text(values[5]),
                                                      values[6]), strict=True))
    decoded: list[object] = []

    def as_json(value: str) -> object:
        decoded.append(value)
        return orjson.loads(value)

    monkeypatch.setattr(saga_progress, "as_json", as_json)
    read = projection.decode(record)
    assert read.status == "RUNNING" and read.steps == row.steps
    assert decoded == [record["steps"]], "the timeline is not decoded until it is read"
    assert read == row and hash(read) == hash(row) and read.timeline == entries and entries == read.timeline
    assert read.timeline[-1].detail == "attempt 1: ChargePayment" and list(read.timeline) == list(entries)
    assert decoded == [record["steps"], record["timeline"]], "and then once"
    assert (*read.timeline, entries[0])[-1] == entries[0] and read.timeline[1:] == entries[1:]


def test_an_order_row_stores_its_lines_with_exact_prices() -> None:
    row = OrderRecord(
        id=ORDER, customer_id=SAGA, order_status="PENDING", saga_started=True, total_amount=Decimal("20.10"),
        currency="USD", lines=(OrderLine(PRODUCT, 3, Decimal("6.70")),), shipping_address=ADDRESS,
        failure_reason=None, created_at=AT, updated_at=AT, version=1,
    )
    projection = OrderSummary()
    values = projection.encode(row)
    assert stored(values, 7) == [
        {"product_id": "00000000-0000-0000-0000-000000000003", "quantity": 3, "unit_price": "6.70"}
    ]
    assert stored(values, 8) == {"street": "1 Main St", "city": "Springfield", "state": "IL",
                                 "zip_code": "62701", "country": "US"}
    record = dict(zip(projection.table.column_names, values, strict=True))
    record |= {"items": json_text(values[7]), "shipping_address": json_text(values[8])}
    assert projection.decode(record) == row


def test_a_value_json_cannot_hold_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="not JSON serializable: set"):
        json_text({"tags": {1, 2}})

"""JSON log lines carry the correlation and causation ids of the message being handled."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest

from domain.base import caused_by
from infra.observability.logs import log_handler


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing through the JSON handler into a buffer."""
    out = io.StringIO()
    handler = log_handler(json=True)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    logger = logging.getLogger(f"tests.logs.{uuid4().hex}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)


def parsed(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_written_inside_caused_by_carries_both_ids(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = lines
    order_id = uuid4()
    with caused_by(order_id, "Payments:42"):
        logger.info("charged %s", "EUR 10.00")
    [line] = parsed(out)
    assert line["correlation_id"] == str(order_id) and line["causation_id"] == "Payments:42"
    assert (line["level"], line["logger"], line["message"]) == ("INFO", logger.name, "charged EUR 10.00")
    assert line["time"].endswith("+00:00")


def test_a_line_written_outside_any_cause_carries_no_ids(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = lines
    with caused_by(uuid4(), "Orders:1"):
        pass
    logger.warning("idle")
    [line] = parsed(out)
    assert "correlation_id" not in line and "causation_id" not in line


def test_an_exception_is_serialised_with_its_traceback(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = lines
    try:
        raise ValueError("no carrier capacity")
    except ValueError:
        logger.exception("shipping failed")
    [line] = parsed(out)
    assert line["level"] == "ERROR" and line["message"] == "shipping failed"
    assert "Traceback" in line["exception"] and "ValueError: no carrier capacity" in line["exception"]


def test_every_record_is_one_json_object_on_one_line_with_its_extra_fields(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines
    order_id = uuid4()
    logger.info("first line\nsecond line", extra={"order_id": order_id, "attempt": 2})
    logger.debug("quote \" and unicode é")
    written = out.getvalue().splitlines()
    assert len(written) == 2
    first, second = (json.loads(line) for line in written)
    assert first["message"] == "first line\nsecond line"
    assert (first["order_id"], first["attempt"]) == (str(order_id), 2)
    assert second["message"] == "quote \" and unicode é"


def test_the_ids_reach_lines_of_loggers_that_propagate_to_the_handler(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines
    library = logging.getLogger(f"{logger.name}.library")  # a child logger knows nothing of the ids
    order_id = uuid4()
    with caused_by(order_id, "command:1"):
        library.info("a library speaks")
    [line] = parsed(out)
    assert (line["logger"], line["correlation_id"]) == (library.name, str(order_id))


def test_the_text_format_appends_the_ids_when_there_are_some() -> None:
    out = io.StringIO()
    handler = log_handler(json=False)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    logger = logging.getLogger(f"tests.logs.{uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    order_id = uuid4()
    with caused_by(order_id, "Orders:7"):
        logger.warning("late")
    logger.warning("plain")
    first, second = out.getvalue().splitlines()
    assert first.endswith(f"late [correlation_id={order_id} causation_id=Orders:7]")
    assert second.endswith("plain")

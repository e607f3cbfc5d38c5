"""Log output: one JSON object per line for machines, or the plain format for people.

Every line written while a message is handled carries the saga's correlation id
and the message's causation id, taken from the ambient `caused_by` context. A
filter on the handler adds them, so lines from every logger carry them, the
libraries' included, without any call site passing them along.
"""

from __future__ import annotations

import json as jsonlib
import logging
from datetime import UTC, datetime
from typing import Any

from domain.base import current_cause

CAUSE_FIELDS = ("correlation_id", "causation_id")
# The attributes every LogRecord has; anything else on a record came from `extra=`
# (except uvicorn's copy of the message with terminal colours).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message",
}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class CauseFilter(logging.Filter):
    """Adds the current correlation and causation ids to each record, when there are any."""

    def filter(self, record: logging.LogRecord) -> bool:
        cause = current_cause()
        if cause.correlation_id is not None and not hasattr(record, "correlation_id"):
            record.correlation_id = str(cause.correlation_id)
        if cause.causation_id is not None and not hasattr(record, "causation_id"):
            record.causation_id = cause.causation_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO-8601, UTC), level, logger, message, exception, ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        line |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        # default=str: an extra may be a UUID, a datetime or a Decimal; a log line must never fail.
        return jsonlib.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The plain format, with the ids appended when the line has them."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = " ".join(f"{name}={getattr(record, name)}" for name in CAUSE_FIELDS if hasattr(record, name))
        if not ids:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{ids}]{newline}{rest}"


def log_handler(*, json: bool) -> logging.Handler:
    """A handler on stderr writing JSON lines or plain text, with the ids of the current cause."""
    handler = logging.StreamHandler()
    handler.addFilter(CauseFilter())
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    return handler


def configure_logging(level: str, *, json: bool) -> None:
    """Send every logger's records at `level` and above through one handler (replacing the root's)."""
    logging.basicConfig(level=level.upper(), handlers=[log_handler(json=json)], force=True)

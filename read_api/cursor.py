"""Opaque page cursors for the newest-first order list.

A cursor is where a page ended (the last row's creation time and id), so the
next page starts after it even while new orders arrive at the top. It is
encoded so that clients pass it back unread rather than build their own.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from uuid import UUID

from projections.read_model import OrderCursor

_VERSION = "o1"


class InvalidCursorError(ValueError):
    """The cursor was not one this API handed out."""


def encode_cursor(cursor: OrderCursor) -> str:
    text = f"{_VERSION}|{cursor.created_at.astimezone(UTC).isoformat()}|{cursor.id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(value: str) -> OrderCursor:
    try:
        padded = value + "=" * (-len(value) % 4)
        version, created_at, order_id = base64.urlsafe_b64decode(padded).decode().split("|")
        if version != _VERSION:
            raise ValueError(version)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError(created_at)
        return OrderCursor(created_at=moment, id=UUID(order_id))
    except (ValueError, UnicodeDecodeError, binascii.Error) as error:
        raise InvalidCursorError(f"{value!r} is not a cursor from this API") from error

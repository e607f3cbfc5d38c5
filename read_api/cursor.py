"""Opaque page cursors: for the newest-first order list, a stream's events and the sagas.

An order cursor is where a page ended (the last row's creation time and id), so
the next page starts after it even while new orders arrive at the top. An event
cursor is an event's place in its stream, valid for that stream only. Both are
encoded so that clients pass them back unread rather than build their own.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from uuid import UUID

from projections.read_model import OrderCursor

_VERSION = "o1"
_EVENTS = "e1"
_SAGAS = "s1"


class InvalidCursorError(ValueError):
    """The cursor was not one this API handed out."""


def encode_cursor(cursor: OrderCursor) -> str:
    return _encode(f"{_VERSION}|{cursor.created_at.astimezone(UTC).isoformat()}|{cursor.id}")


def decode_cursor(value: str) -> OrderCursor:
    try:
        version, created_at, order_id = _decode(value).split("|")
        if version != _VERSION:
            raise ValueError(version)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError(created_at)
        return OrderCursor(created_at=moment, id=UUID(order_id))
    except (ValueError, UnicodeDecodeError, binascii.Error) as error:
        raise InvalidCursorError(f"{value!r} is not a cursor from this API") from error


def encode_event_cursor(stream_id: UUID, version: int) -> str:
    """The cursor after which the next page of the stream's events begins."""
    return _encode(f"{_EVENTS}|{stream_id}|{version}")


def decode_event_cursor(value: str, stream_id: UUID) -> int:
    """The version an event cursor of this stream points at."""
    try:
        kind, stream, version = _decode(value).split("|")
        # A version beyond a 64-bit integer is no stream's: refused here, not by the store.
        if kind != _EVENTS or UUID(stream) != stream_id or not (version.isdigit() and len(version) <= 18):
            raise ValueError(value)
        return int(version)
    except (ValueError, UnicodeDecodeError, binascii.Error) as error:
        raise InvalidCursorError(f"{value!r} is not a cursor of this stream's events") from error


def encode_saga_cursor(saga_id: UUID) -> str:
    """The cursor after which `sagas(after:)` reads the next page."""
    return _encode(f"{_SAGAS}|{saga_id}")


def decode_saga_cursor(value: str) -> UUID:
    try:
        kind, saga_id = _decode(value).split("|")
        if kind != _SAGAS:
            raise ValueError(kind)
        return UUID(saga_id)
    except (ValueError, UnicodeDecodeError, binascii.Error) as error:
        raise InvalidCursorError(f"{value!r} is not a cursor of the sagas") from error


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(value: str) -> str:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()

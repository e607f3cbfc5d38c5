"""SQL statements rendered once, when their store is made, and a cursor kept with its connection.

psycopg renders a `sql.Composed` again at every execute: each identifier quoted,
the parts joined and encoded, 7-8 µs for a save's call or a batch's load, paid
on every save, load and recorded position. A statement whose names are fixed
when its store is made is rendered once instead, and stays a `Composed` for
whatever expects one (the library's recorders keep theirs as attributes).
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection, Cursor, sql
from psycopg.abc import AdaptContext
from psycopg.rows import RowFactory, tuple_row


class Rendered(sql.Composed):
    """A statement whose bytes are those of `statement`, rendered when it is made."""

    def __init__(self, statement: sql.Composable) -> None:
        super().__init__([statement])
        self._rendered = statement.as_bytes(None)

    def as_bytes(self, context: AdaptContext | None = None) -> bytes:
        return self._rendered


_KEPT = "_kept_cursor"


def kept_cursor(connection: Connection[Any], row_factory: RowFactory[Any] = tuple_row) -> Cursor[Any]:
    """The connection's cursor for the statements run on every save, load and recorded position.

    psycopg finds the adapters of a statement's parameters afresh for each new cursor:
    binding a save's fourteen arrays cost 52 µs through a new cursor, 28 through one that
    had bound them before. A pooled connection serves one thread at a time, and so does
    its kept cursor, which is kept on the connection and goes with it. Its rows are made
    by `row_factory`.
    """
    kept = vars(connection)
    cursor: Cursor[Any] | None = kept.get(_KEPT)
    if cursor is None or cursor.closed:
        cursor = kept[_KEPT] = connection.cursor()
    cursor.row_factory = row_factory
    return cursor

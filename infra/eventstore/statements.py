"""SQL statements rendered once, when their store is made.

psycopg renders a `sql.Composed` again at every execute: each identifier quoted,
the parts joined and encoded, 7-8 µs for a save's call or a batch's load, paid
on every save, load and recorded position. A statement whose names are fixed
when its store is made is rendered once instead, and stays a `Composed` for
whatever expects one (the library's recorders keep theirs as attributes).
"""

from __future__ import annotations

from psycopg import sql
from psycopg.abc import AdaptContext


class Rendered(sql.Composed):
    """A statement whose bytes are those of `statement`, rendered when it is made."""

    def __init__(self, statement: sql.Composable) -> None:
        super().__init__([statement])
        self._rendered = statement.as_bytes(None)

    def as_bytes(self, context: AdaptContext | None = None) -> bytes:
        return self._rendered

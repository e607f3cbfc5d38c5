"""The store without its privacy and proof: personal data in clear, no hash chain (for mode b0).

A baseline only, to price what sealing personal fields and chaining events cost; the
product has no switch for the chain (events saved without one would read as tampered).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from infra.eventstore.chain_tables import PostgresHashes
from infra.eventstore.sqlite_chain import SQLiteHashes


@contextlib.contextmanager
def unchained() -> Iterator[None]:
    """Saves without the hash chain: no hashes read, computed or written."""
    saved = PostgresHashes.chained, PostgresHashes.insert, SQLiteHashes.write
    PostgresHashes.chained = lambda self, curs, stored_events: []  # type: ignore[method-assign]
    PostgresHashes.insert = _nothing  # type: ignore[method-assign]
    SQLiteHashes.write = _nothing  # type: ignore[method-assign]
    try:
        yield
    finally:
        PostgresHashes.chained, PostgresHashes.insert, SQLiteHashes.write = saved  # type: ignore[method-assign]


def _nothing(*_: Any, **__: Any) -> None:
    return None

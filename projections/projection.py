"""What every projection shares: one table of rows, each row folded from the events about it.

A projection names the applications it follows and the topics it reads. Its
`evolve` is a pure function of (row or None, fact) -> row; the runner loads the
rows a batch touches, folds the batch's facts into them in memory and writes
back only the rows that changed, with the tracking position, in one
transaction. Rows are keyed by a UUID (`key`), usually the event's originator.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

from projections.facts import Fact
from projections.store import Row, TableSpec, Tx, placeholders

R = TypeVar("R")
Refused = tuple[Fact, Exception]
"""A fact a projection could not apply, and why."""

REBUILD_SUFFIX = "__rebuild"
IN_LIST_CHUNK = 500


class CannotApplyError(Exception):
    """This projection cannot make sense of an event (an unknown row, a missing field)."""


class Projection(ABC, Generic[R]):
    """One read model: its table, the events it reads, and how each event changes a row."""

    name: ClassVar[str]
    applications: ClassVar[tuple[str, ...]]
    topics: ClassVar[frozenset[str]]
    base_table: ClassVar[TableSpec]
    reads_personal_data: ClassVar[bool] = True
    """False for a projection whose rows hold no personal field: a rebuild leaves its events' seals shut."""
    folds_runs: ClassVar[bool] = False
    """True for a projection whose `evolve_all` builds a row once for a run of its facts: the
    applier then hands it each row's facts of a batch at once rather than one by one."""

    def __init__(self, suffix: str = "") -> None:
        self.suffix = suffix
        self.table = self.base_table.renamed(self.base_table.name + suffix)

    @property
    def tracking_name(self) -> str:
        """The name its positions are kept under; a rebuild keeps its own until it is swapped in."""
        return self.name + self.suffix

    def shadow(self) -> Projection[R]:
        """The same projection writing to tables of its own, for a rebuild."""
        return type(self)(REBUILD_SUFFIX)

    def wants(self, fact: Fact) -> bool:
        return fact.topic in self.topics

    def key(self, fact: Fact) -> UUID:
        """The id of the row a fact changes."""
        return fact.originator_id

    @abstractmethod
    def evolve(self, row: R | None, fact: Fact) -> R:
        """The row after the fact; raises CannotApplyError (or any error) for an event it cannot apply."""

    def evolve_all(self, row: R | None, facts: Sequence[Fact]) -> tuple[R | None, list[Refused]]:
        """The row after these facts of it in turn, and those it could not apply (each skipped).

        A projection whose rows are dear to build may build one for the whole run of
        facts instead of one per fact (and say so, `folds_runs`); it must come to the
        row `evolve` would.
        """
        refused: list[Refused] = []
        for fact in facts:
            try:
                row = self.evolve(row, fact)
            except Exception as error:
                refused.append((fact, error))
        return row, refused

    @abstractmethod
    def encode(self, row: R) -> tuple[Any, ...]:
        """The row's values in the order of the table's columns."""

    @abstractmethod
    def decode(self, record: Row) -> R: ...

    def order_of(self, row: R) -> UUID | None:
        """The order a row belongs to, so that the order's watchers hear of the change."""
        return None

    async def load(self, tx: Tx, keys: Iterable[UUID]) -> dict[UUID, R]:
        found: dict[UUID, R] = {}
        columns = ", ".join(self.table.column_names)
        for chunk in chunks(list(keys)):
            statement = f"SELECT {columns} FROM {self.table.name} WHERE id IN ({placeholders(1, len(chunk))})"
            for record in await tx.fetch(statement, *chunk):
                row = self.decode(record)
                found[self.key_of(row)] = row
        return found

    async def save(self, tx: Tx, rows: Mapping[UUID, R]) -> None:
        await tx.executemany(self.table.upsert_statement(), [self.encode(row) for row in rows.values()])

    async def insert(self, tx: Tx, rows: Iterable[R]) -> None:
        """Write rows the table does not hold yet, in bulk: a rebuild's new rows."""
        await tx.copy_in(self.table, [self.encode(row) for row in rows])

    def key_of(self, row: R) -> UUID:
        key = getattr(row, "id", None)
        if not isinstance(key, UUID):
            raise TypeError(f"{type(row).__name__} has no UUID id")
        return key


def chunks(values: Sequence[Any], size: int = IN_LIST_CHUNK) -> list[Sequence[Any]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def changed(row: R, **changes: Any) -> R:
    """The frozen row with these fields changed: `dataclasses.replace` for rows, at a third of its cost.

    A replay changes a row per event, and `replace` works out the class's fields
    and calls its `__init__` every time. The rows here are plain frozen
    dataclasses (no `__post_init__`, no `__slots__`), so their fields are copied as they are.
    """
    row_class: type[Any] = type(row)
    unknown = changes.keys() - _field_names(row_class)
    if unknown:
        raise TypeError(f"{row_class.__name__} has no field {', '.join(sorted(unknown))}")
    new: R = object.__new__(row_class)
    fields = new.__dict__
    fields.update(row.__dict__)
    fields.update(changes)
    return new


_FIELD_NAMES: dict[type[Any], frozenset[str]] = {}


def _field_names(row_class: type[Any]) -> frozenset[str]:
    names = _FIELD_NAMES.get(row_class)
    if names is None:
        names = _FIELD_NAMES[row_class] = frozenset(field.name for field in dataclasses.fields(row_class))
    return names


def require(row: R | None, fact: Fact) -> R:
    """The row an event follows up on; an event for a row never created cannot be applied."""
    if row is None:
        raise CannotApplyError(f"{fact.topic} for {fact.originator_id} follows no event this projection saw")
    return row

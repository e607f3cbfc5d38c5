"""Personal data in events: which fields hold it, whose it is, and what it reads as once forgotten.

An event class that carries a person's data says so once, in a class attribute:

    class Placed(Aggregate.Created):
        personal_data: ClassVar[PersonalData] = PersonalData(
            subject="customer_id", fields={"shipping_address": ERASED_ADDRESS},
        )

The event store keeps those fields encrypted with that person's own key, and
forgetting the person deletes the key: from then on the fields read as their
`erased` form everywhere, while the rest of the event (amounts, items, what
happened when) stays readable, so the books still balance. Paths are dotted
names into the event's stored JSON (`command.payload.address`); a field, or a
subject, that an event does not carry is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.base import Aggregate

ERASED = "[erased]"
"""What a forgotten personal value reads as."""

ERASED_ADDRESS: Mapping[str, str] = {
    name: ERASED for name in ("street", "city", "state", "zip_code", "country")
}
"""A forgotten address, as stored JSON (`domain.values.Address` accepts it)."""


@dataclass(frozen=True)
class PersonalData:
    """The personal fields of an event class, by dotted path, each with its erased form."""

    subject: str
    """The path of the field that names the person (a customer id)."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """Each personal field's path, and the JSON it reads as once the person is forgotten."""


def personal_data_of(event_class: type[Any]) -> PersonalData | None:
    """The event class's declaration, if it carries personal data (asked of every event saved and read)."""
    try:
        return _declared[event_class]
    except KeyError:
        declared = getattr(event_class, "personal_data", None)
        found = _declared[event_class] = declared if isinstance(declared, PersonalData) else None
        return found


_declared: dict[type[Any], PersonalData | None] = {}


def subject_of(event: Any) -> UUID | None:
    """Whose personal data the event carries, if it carries any (its declared subject's value)."""
    declared = personal_data_of(type(event))
    if declared is None:
        return None
    value: Any = event
    for name in declared.subject.split("."):
        value = value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)
        if value is None:
            return None
    return value if isinstance(value, UUID) else UUID(str(value))


class Forgetting(Aggregate):
    """That a customer's personal data was forgotten: who asked, when, and which orders were cut short."""

    class Recorded(Aggregate.Created):
        customer_id: UUID
        requested_by: str

    class Repeated(Aggregate.Event):
        """Asked again, after orders placed since the first time: those were erased too."""

        requested_by: str

    @staticmethod
    def create_id(customer_id: UUID) -> UUID:
        """One stream per customer, however often forgetting is asked for."""
        return uuid5(NAMESPACE_URL, f"/forgettings/{customer_id}")

    @classmethod
    def record(cls, customer_id: UUID, requested_by: str) -> Forgetting:
        forgetting: Forgetting = cls._create(
            cls.Recorded, id=cls.create_id(customer_id), customer_id=customer_id, requested_by=requested_by,
        )
        return forgetting

    def repeat(self, requested_by: str) -> None:
        self.trigger_event(self.Repeated, requested_by=requested_by)

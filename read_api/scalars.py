"""The custom scalars of the schema: DateTime (ISO 8601, UTC) and Decimal (money, as a string).

Money never passes through a binary float: a Decimal is written as a string
("2599.98"), read from a string or an integer, and a number typed into the
query text is read from its digits as written. A float in the JSON variables
is refused, because by then its exact value may already be lost.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.types.scalar import ScalarDefinition, scalar


def serialize_datetime(value: datetime) -> str:
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def parse_datetime(value: object) -> datetime:
    """An ISO 8601 moment; one without a zone is taken as UTC, as every time in the system is."""
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(f"DateTime must be an ISO 8601 string, not {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise StrawberryInputCoercionError(f"{value!r} is not an ISO 8601 date and time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def serialize_decimal(value: Decimal) -> str:
    return format(value, "f")


def parse_decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise StrawberryInputCoercionError(
            f"Decimal must be a string such as \"49.99\" (or an integer), not {value!r}"
        )
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise StrawberryInputCoercionError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise StrawberryInputCoercionError(f"{value!r} is not a finite decimal number")
    return number


def parse_decimal_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> Decimal:
    if isinstance(node, StringValueNode | IntValueNode | FloatValueNode):
        # The literal's own digits: "49.99" stays 49.99, never 49.990000000000002.
        return parse_decimal(node.value)
    raise StrawberryInputCoercionError("Decimal must be a string or a number literal")


DATETIME: ScalarDefinition = scalar(
    name="DateTime",
    description="A moment as ISO 8601 in UTC, e.g. 2026-03-01T12:00:00Z",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)

DECIMAL: ScalarDefinition = scalar(
    name="Decimal",
    description='An exact decimal number written as a string, e.g. "2599.98"',
    serialize=serialize_decimal,
    parse_value=parse_decimal,
    parse_literal=parse_decimal_literal,
)

SCALARS: dict[object, ScalarDefinition] = {datetime: DATETIME, Decimal: DECIMAL}

"""How a refused request is told to the client: a stable code, a message, and the input at fault.

Commands name fields as the write side spells them (`items[0].product_id`);
GraphQL clients sent `items[0].productId`, REST clients the snake_case of the
old API. One conversion serves both, so a field path means the same input
whichever door the request came through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from domain.base import DomainError

UNAUTHORIZED = "UNAUTHORIZED"
NOT_FOUND = "NOT_FOUND"
VALIDATION_ERROR = "VALIDATION_ERROR"
UNAVAILABLE = "UNAVAILABLE"

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    field: str | None = None


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_path(path: str) -> str:
    """'shipping_address.zip_code' -> 'shippingAddress.zipCode'; indexes stay as they are."""
    return _SEGMENT.sub(lambda match: camel(match.group(1)), path)


def problem_from(
    error: DomainError, *, renames: Mapping[str, str] | None = None, graphql: bool = True
) -> Problem:
    """The client's view of a refusal. `renames` maps a command's field to the argument the client sent."""
    field = error.field
    if field is not None:
        head, sep, tail = field.partition(".")
        bracket = head.find("[")
        root, index = (head, "") if bracket < 0 else (head[:bracket], head[bracket:])
        field = (renames or {}).get(root, root) + index + sep + tail
        if graphql:
            field = camel_path(field)
    return Problem(error.code, error.message, field)

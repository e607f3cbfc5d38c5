"""How a refused request is told to the client: a stable code, a message, and the input at fault.

Commands name fields as the write side spells them (`items[0].product_id`);
GraphQL clients sent `items[0].productId`, REST clients the snake_case of the
old API. One conversion serves both, so a field path means the same input
whichever door the request came through, and a message that names the field
(`items[0].quantity: Input should be ...`) names it as `field` does.
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
    if error.field is None:
        return Problem(error.code, error.message)
    head, sep, tail = error.field.partition(".")
    bracket = head.find("[")
    root, index = (head, "") if bracket < 0 else (head[:bracket], head[bracket:])
    field = (renames or {}).get(root, root) + index + sep + tail
    if graphql:
        field = camel_path(field)
    return Problem(error.code, respelled(error.message, error.field, field), field)


def respelled(message: str, written: str, spelled: str) -> str:
    """The message with each mention of the field path `written` spelled as the client's `spelled`."""
    if written == spelled:
        return message
    # A mention is the whole path: not part of a longer name or path (`items` in `items[0].quantity`).
    mention = re.compile(rf"(?<![\w.\]]){re.escape(written)}(?![\w\[]|\.\w)")
    return mention.sub(lambda _: spelled, message)

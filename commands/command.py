"""A command: a frozen, validated request to change the system, and how it is parsed and dispatched.

A command carries its own id, so that handling it is idempotent (its id is the
tracking row written with its events), and the ids of the message that caused it.
A context's application marks each handler with `@handles(CommandType)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from domain.base import DomainError, ValidationError

H = TypeVar("H", bound=Callable[..., Any])


class Command(BaseModel):
    """A request to change the system. Frozen; its shape is validated on construction."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    command_id: UUID = Field(default_factory=uuid4)
    correlation_id: UUID | None = None
    causation_id: str | None = None

    @property
    def tracking_name(self) -> str:
        return f"command:{self.command_id}"


class ConcurrencyError(DomainError):
    """Writers kept colliding on the same aggregate; the command was not applied."""

    code = "CONCURRENCY_CONFLICT"


def handles(command_type: type[Command]) -> Callable[[H], H]:
    """Mark an application method as the handler of one command type."""

    def mark(method: H) -> H:
        method.__handles__ = command_type  # type: ignore[attr-defined]
        return method

    return mark


C = TypeVar("C", bound=Command)


def parse_command(cls: type[C], data: Any) -> C:
    """Build a command from untrusted input; a bad field becomes a ValidationError naming it."""
    try:
        return cls.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        field = field_path(first["loc"])
        raise ValidationError(f"{field}: {first['msg']}", field=field) from exc


def field_path(loc: Sequence[int | str]) -> str:
    """('items', 0, 'quantity') -> 'items[0].quantity'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path

"""Value objects: Money and Address."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from domain.base import ValidationError

CENT = Decimal("0.01")
DEFAULT_CURRENCY = "USD"


def refuse_float(value: object) -> object:
    """Binary floats cannot hold most prices exactly; money comes as a Decimal or a string."""
    if isinstance(value, float):
        raise ValueError("money must not be a float; pass a Decimal or a string")
    return value


Amount = Annotated[Decimal, BeforeValidator(refuse_float), Field(gt=0, max_digits=14, decimal_places=2)]
"""A positive amount of money in input: exact to the cent, never a float."""
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Money(BaseModel):
    """An amount of one currency, exact to the cent. Never a float."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal
    currency: str = DEFAULT_CURRENCY

    @field_validator("amount", mode="before")
    @classmethod
    def _refuse_floats(cls, value: object) -> object:
        return refuse_float(value)

    @field_validator("amount")
    @classmethod
    def _to_cents(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("money must be a finite number")
        return value.quantize(CENT, rounding=ROUND_HALF_EVEN)

    @classmethod
    def zero(cls, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(amount=Decimal("0"), currency=currency)

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(amount=Decimal(amount), currency=currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValidationError(
                f"cannot combine {self.currency} with {other.currency}", field="currency"
            )

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def __mul__(self, quantity: int) -> Money:
        return Money(amount=self.amount * quantity, currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    def is_positive(self) -> bool:
        return self.amount > 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


AddressLine = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Address(BaseModel):
    """A shipping address. Every field is required and non-blank."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    street: AddressLine
    city: AddressLine
    state: AddressLine
    zip_code: AddressLine
    country: AddressLine

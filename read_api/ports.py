"""What the API needs from the rest of the system, stated as protocols.

The API never imports the composition root: whoever builds it (the runtime, a
test) hands it objects of these shapes. `infra.bootstrap.System`, the buses of
`infra` and `infra.settings.Settings` fit them as they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol
from uuid import UUID

from commands.base import ContextApplication
from commands.inventory import Inventory
from commands.orders import Orders
from commands.privacy import ForgetsKeys
from projections.read_model import ParkedMessage
from read_api.identity import AuthSettings

ReadyCheck = Callable[[], Awaitable[dict[str, Any]]]
"""Reports whether the stores and the broker behind the API answer: `{"status": "ok", ...}` when they do."""


class RetriesSagas(Protocol):
    """The saga application, as far as the API asks it to act: an operator's retry."""

    def retry_saga(self, order_id: UUID, requested_by: str | None = None) -> int:
        """Resume a saga that NEEDS_ATTENTION, recording who asked; its version afterwards.

        Refusals are DomainErrors.
        """
        ...


class WriteSystem(Protocol):
    """The write side: the applications whose commands the mutations send and whose streams audits read."""

    @property
    def orders(self) -> Orders: ...

    @property
    def inventory(self) -> Inventory: ...

    @property
    def sagas(self) -> RetriesSagas: ...

    @property
    def applications(self) -> tuple[ContextApplication, ...]: ...

    @property
    def personal_data(self) -> ForgetsKeys | None:
        """The customers' data keys, which forgetting deletes; None when personal data is kept in clear."""
        ...


class DeadLetterDesk(Protocol):
    """The part of the message bus that lists and re-drives parked messages."""

    async def dead_letters(self, queue: str | None = None) -> Sequence[ParkedMessage]: ...

    async def redrive(self, dead_letter_id: str) -> bool: ...


class ApiSettings(AuthSettings, Protocol):
    """Who is trusted (see `read_api.identity`), and whether the schema may be introspected."""

    @property
    def graphql_introspection(self) -> bool | None: ...


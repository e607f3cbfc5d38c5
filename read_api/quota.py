"""How many subscriptions a WebSocket connection and a client may hold at once.

A subscription holds a read-model watcher for as long as it lives, so each
connection and each client (its token's subject, or its address when it has
none of its own) may hold only so many; one more is refused with a code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from graphql import GraphQLError

from read_api.identity import ADMIN_TOKEN_HOLDER, DEVELOPER

if TYPE_CHECKING:
    from read_api.context import Context

Key = TypeVar("Key", str, int)
TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
PER_CONNECTION = 10
PER_CLIENT = 50
SHARED = (DEVELOPER, ADMIN_TOKEN_HOLDER)
"""Principals that stand for whoever holds a shared credential: counted by address instead."""


@dataclass
class SubscriptionQuota:
    """How many subscriptions each connection and each client holds now, and the most they may."""

    per_connection: int = PER_CONNECTION
    per_client: int = PER_CLIENT
    _by_client: Counter[str] = field(default_factory=Counter)
    _by_connection: Counter[int] = field(default_factory=Counter)

    @contextmanager
    def held(self, client: str, connection: int) -> Iterator[None]:
        """Hold one subscription for `client` on `connection`, or refuse with TOO_MANY_SUBSCRIPTIONS."""
        if self._by_connection[connection] >= self.per_connection:
            raise _refused(f"a connection may hold {self.per_connection} subscriptions at once")
        if self._by_client[client] >= self.per_client:
            raise _refused(f"a client may hold {self.per_client} subscriptions at once")
        self._by_connection[connection] += 1
        self._by_client[client] += 1
        try:
            yield
        finally:
            _release(self._by_client, client)
            _release(self._by_connection, connection)

    def held_for(self, context: Context) -> AbstractContextManager[None]:
        """Hold one subscription for the caller of `context` on its connection (one context a connection)."""
        return self.held(client_of(context), id(context))

    def held_by(self, client: str) -> int:
        return self._by_client[client]


def client_of(context: Context) -> str:
    """Who a subscription counts against: the token's subject, else the address it came from."""
    principal = context.access.principal
    if principal.authenticated and principal not in SHARED:
        return f"sub:{principal.subject}"
    request = context.request
    host = None if request is None or request.client is None else request.client.host
    return f"addr:{host or 'unknown'}"


def _release(counter: Counter[Key], key: Key) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]  # a client gone for good leaves nothing behind


def _refused(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": TOO_MANY_SUBSCRIPTIONS})

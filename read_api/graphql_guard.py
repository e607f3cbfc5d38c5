"""The permission layer at the GraphQL door: each root field of an operation, and each WebSocket.

Before an operation runs, every root field it selects (through fragments too)
is checked against `permissions.GRAPHQL_FIELDS`; one refused field refuses the
whole operation, with `extensions.code` UNAUTHENTICATED or FORBIDDEN, before
any resolver has read or written anything. A WebSocket authenticates with the
token in its `connection_init` payload and is closed 4401 (no or bad token) or
4403 (a token that may not subscribe) otherwise.

`/graphql` itself is Strawberry's ASGI view, a route of its own rather than
FastAPI's: it asks the route guard's question at its door, as FastAPI asks it
before each of its routes, and answers without FastAPI's dependency solving,
which cost a fresh `order(id)` more than its own read of the store.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage

from read_api.answer_cache import CACHEABLE_ROOTS, verdict_of
from read_api.context import Context
from read_api.guard import closed_unless_listed
from read_api.permissions import Access, AccessDeniedError, Rule, UnauthenticatedError
from read_api.services import Services

ROOT_TYPES = {"query": "Query", "mutation": "Mutation", "subscription": "Subscription"}
INTROSPECTION = frozenset({"__typename", "__schema", "__type"})
"""Root fields every caller may select; whether `__schema` answers is for the introspection setting."""


def denied(error: AccessDeniedError) -> GraphQLError:
    return GraphQLError(error.message, extensions={"code": error.code})


class FieldGuard(SchemaExtension):
    """Refuses an operation whose root fields the caller may not use, before it executes.

    A query it lets through that selects only CACHEABLE_ROOTS may have its
    answer kept (`answer_cache`; its resolvers may still veto): the same walk
    of the root fields decides both, once.
    """

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        operation = None if document is None else get_operation_ast(document, context.operation_name)
        caller = context.context
        if operation is not None and document is not None and isinstance(caller, Context):
            fragments = {
                d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
            type_name = ROOT_TYPES[operation.operation.value]
            names = root_fields(operation, fragments)
            for name in names:
                if name in INTROSPECTION:
                    continue
                try:
                    caller.access.require_field(type_name, name)
                except AccessDeniedError as error:
                    raise denied(error) from None
            if operation.operation is OperationType.QUERY and names <= CACHEABLE_ROOTS:
                verdict = verdict_of(None if caller.request is None else caller.request.scope)
                if verdict is not None:
                    verdict.allow()
        yield


def root_fields(
    operation: OperationDefinitionNode, fragments: Mapping[str, FragmentDefinitionNode]
) -> set[str]:
    """The names (not aliases) of the root fields an operation selects, through its fragments."""
    names: set[str] = set()
    seen: set[str] = set()
    # A list of selection sets still to walk, not a nested function calling itself: such a
    # function is a reference cycle, left for the cycle collector after every operation.
    pending = [operation.selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None and fragment.name.value not in seen:
                    seen.add(fragment.name.value)
                    pending.append(fragment.selection_set)
    return names


class GuardedTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws whose `connection_init` must carry a token that may subscribe."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload: Any = message.get("payload") or {}
        first = not self.connection_init_received
        if first and isinstance(payload, dict) and isinstance(self.context, Context):
            header = payload.get("Authorization", payload.get("authorization"))
            # Without a token in the payload, one sent with the handshake's own headers counts.
            access = self.context.access if header is None else Access.of(
                self.context.services.authenticator.principal, header if isinstance(header, str) else "")
            try:
                access.require(Rule.ORDERS, "a subscription")
            except AccessDeniedError as error:
                unauthenticated = isinstance(error, UnauthenticatedError)
                await self.websocket.close(code=4401 if unauthenticated else 4403,
                                           reason="Unauthorized" if unauthenticated else "Forbidden")
                return
            self.context.access = access
        await super().handle_connection_init(message)


class GuardedGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view at /graphql, open only where the route guard opened it.

    It speaks only graphql-transport-ws, through the guarded handler, and gives
    each operation a `Context` of its own over the app's services.
    """

    graphql_transport_ws_handler_class = GuardedTransportWSHandler

    def __init__(self, *args: Any, services: Services, **kwargs: Any) -> None:
        kwargs.setdefault("subscription_protocols", (GRAPHQL_TRANSPORT_WS_PROTOCOL,))
        super().__init__(*args, **kwargs)
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The check FastAPI runs before each of its routes, raised to the same exception handler.
        await closed_unless_listed(HTTPConnection(scope))
        await super().__call__(scope, receive, send)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        return Context(self.services, request=request, response=response)

    def encode_json(self, data: object) -> str:
        """An answer's JSON, by orjson: as compact as Strawberry's own, in a fraction of the time.

        Text, not bytes: a WebSocket's messages are sent as what this returns, and a browser's
        GraphQL client reads only text frames.
        """
        return orjson.dumps(data).decode()

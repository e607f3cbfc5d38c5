"""The GraphQL schema (DESIGN §6) and the limits every operation runs under (`graphql_limits`)."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from graphql import ASTValidationRule, GraphQLResolveInfoHelpers
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from read_api.graphql_errors import Schema
from read_api.graphql_limits import MAX_ALIASES, MAX_DEPTH, MAX_FIELDS, MAX_TOKENS, Limits, limit_rule
from read_api.mutations import Mutation
from read_api.queries import Query
from read_api.scalars import SCALARS
from read_api.subscriptions import Subscription

CACHED_DOCUMENTS = 256
"""Query texts whose parse and validation are kept: clients send the same few queries again and again."""


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """An operation's execution, whose state is freed as soon as it has answered.

    graphql-core gives each execution helpers for resolvers (`info.async_helpers`)
    that are the execution's own bound methods: a reference cycle, which kept the
    whole operation (its fields, its context, every row it read) until the cycle
    collector found it, and collecting those cycles took about a fifth of the CPU
    of a fresh `order(id)`. Here the helpers reach the execution through a weak
    reference; while it runs, its resolvers' calls find it as before.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = _helpers(weakref.ref(self))


def _helpers(execution: weakref.ref[ExecutionContext]) -> GraphQLResolveInfoHelpers:
    def running() -> ExecutionContext:
        alive = execution()
        if alive is None:
            raise RuntimeError("the operation has ended")
        return alive

    def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return running().gather_async_work(values)

    def track(values: Sequence[Any]) -> None:
        running().track_async_work(values)

    return GraphQLResolveInfoHelpers(gather=gather, track=track)


def build_schema(
    *, extensions: Sequence[Callable[[], SchemaExtension]] = (),
    max_depth: int = MAX_DEPTH, max_tokens: int = MAX_TOKENS,
    max_aliases: int = MAX_ALIASES, max_fields: int = MAX_FIELDS, introspection: bool = True,
) -> Schema:
    """The schema; parsing and validating a query text the server has seen before costs a lookup.

    Validating a document was half the CPU of an `order(id)` query. The limit
    rule is made once per schema, not per operation, so that the validation
    cache knows it for the same rule; the token limit is a parser option, part
    of the parse cache's key. Errors are answered and logged by `graphql_errors`.
    Without `introspection`, a document asking for `__schema` or `__type` is
    refused by a rule of the same list, so turning it off costs no extension.
    """
    rules: list[type[ASTValidationRule]] = [
        limit_rule(Limits(max_depth=max_depth, max_aliases=max_aliases, max_fields=max_fields))]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=ExecutionContext,
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            lambda: AddValidationRules(rules),
            lambda: ParserCache(maxsize=CACHED_DOCUMENTS),
            lambda: ValidationCache(maxsize=CACHED_DOCUMENTS),
            *extensions,
        ],
    )

"""The GraphQL schema (DESIGN §6) and the limits every operation runs under."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import strawberry
from strawberry.extensions import MaxTokensLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig

from read_api.mutations import Mutation
from read_api.queries import Query
from read_api.scalars import SCALARS
from read_api.subscriptions import Subscription

MAX_DEPTH = 10
"""Deep enough for orders -> edges -> node -> saga -> steps -> name; introspection is not counted."""
MAX_TOKENS = 5000
"""Bounds the parser's work: a placeOrder of 100 lines written out in the query text fits."""


def build_schema(
    *, extensions: Sequence[Callable[[], SchemaExtension]] = (),
    max_depth: int = MAX_DEPTH, max_tokens: int = MAX_TOKENS,
) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALARS),
        extensions=[
            lambda: QueryDepthLimiter(max_depth=max_depth),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            *extensions,
        ],
    )

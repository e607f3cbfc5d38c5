"""The GraphQL schema (DESIGN §6) and the limits every operation runs under."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.schema.config import StrawberryConfig

from read_api.mutations import Mutation
from read_api.queries import Query
from read_api.scalars import SCALARS
from read_api.subscriptions import Subscription

MAX_DEPTH = 10
"""Deep enough for orders -> edges -> node -> saga -> steps -> name; introspection is not counted."""
MAX_TOKENS = 5000
"""Bounds the parser's work: a placeOrder of 100 lines written out in the query text fits."""
CACHED_DOCUMENTS = 256
"""Query texts whose parse and validation are kept: clients send the same few queries again and again."""


def build_schema(
    *, extensions: Sequence[Callable[[], SchemaExtension]] = (),
    max_depth: int = MAX_DEPTH, max_tokens: int = MAX_TOKENS,
) -> strawberry.Schema:
    """The schema; parsing and validating a query text the server has seen before costs a lookup.

    Validating a document was half the CPU of an `order(id)` query. The depth
    rule is made once per schema, not per operation (as QueryDepthLimiter would),
    so that the validation cache can know it for the same rule; the token limit
    is a parser option, part of the parse cache's key.
    """
    depth_rule = create_validator(max_depth, None)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALARS),
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            lambda: AddValidationRules([depth_rule]),
            lambda: ParserCache(maxsize=CACHED_DOCUMENTS),
            lambda: ValidationCache(maxsize=CACHED_DOCUMENTS),
            *extensions,
        ],
    )

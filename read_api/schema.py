"""The GraphQL schema (DESIGN §6) and the limits every operation runs under (`graphql_limits`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    parse,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document

from read_api.execution import ExecutionContext, read_attributes_directly
from read_api.graphql_errors import Schema
from read_api.graphql_limits import MAX_ALIASES, MAX_DEPTH, MAX_FIELDS, MAX_TOKENS, Limits, limit_rule
from read_api.mutations import Mutation
from read_api.queries import Query
from read_api.scalars import SCALARS
from read_api.subscriptions import Subscription

CACHED_DOCUMENTS = 256
"""Query texts whose parse and validation are kept: clients send the same few queries again and again."""


class Prepared:
    """A query text parsed, and once an operation has asked, validated."""

    __slots__ = ("document", "errors")

    def __init__(self, document: DocumentNode) -> None:
        self.document = document
        self.errors: list[GraphQLError] | None = None


class Documents:
    """The query texts a schema has parsed, the last `maxsize` of them, each parsed and validated once.

    Kept by the text itself, whose hash Python computes once per string, and
    not by the parsed document, whose hash walks every node of it on every
    lookup (what `functools.lru_cache` over `validate` does, a twentieth of a
    fresh `order(id)`). A text that does not parse is not kept: Strawberry
    parses it again and answers its syntax error, or its token limit, as usual.
    Used from the event loop that runs the schema's operations, not threads.
    """

    def __init__(self, rules: Sequence[type[ASTValidationRule]], *, max_tokens: int, maxsize: int) -> None:
        self.rules = tuple(rules)
        self.max_tokens = max_tokens
        self._maxsize = maxsize
        self._known: OrderedDict[str, Prepared] = OrderedDict()

    def parsed(self, text: str) -> Prepared | None:
        prepared = self._known.get(text)
        if prepared is not None:
            self._known.move_to_end(text)
            return prepared
        try:
            prepared = Prepared(parse(text, max_tokens=self.max_tokens))
        except GraphQLError:
            return None
        self._known[text] = prepared
        if len(self._known) > self._maxsize:
            self._known.popitem(last=False)
        return prepared


class PreparedDocuments(SchemaExtension):
    """An operation's parse and validation, from `Documents` when its text has been seen before.

    Its rules are Strawberry's and graphql-core's own, the schema's limits
    (`graphql_limits`), and the parser's token limit; the errors of a document
    that fails them are kept with it, as its answer does not change.
    """

    def __init__(self, documents: Documents) -> None:
        self.documents = documents
        self.prepared: Prepared | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.documents.max_tokens
        if context.graphql_document is None and context.query:
            self.prepared = self.documents.parsed(context.query)
            if self.prepared is not None:
                context.graphql_document = self.prepared.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = (*context.validation_rules, *self.documents.rules)
        prepared = self.prepared
        if prepared is not None and prepared.document is context.graphql_document:
            if prepared.errors is None:
                prepared.errors = validate_document(
                    context.schema._schema, prepared.document, context.validation_rules)
            context.pre_execution_errors = prepared.errors
        yield


def build_schema(
    *, extensions: Sequence[Callable[[], SchemaExtension]] = (),
    max_depth: int = MAX_DEPTH, max_tokens: int = MAX_TOKENS,
    max_aliases: int = MAX_ALIASES, max_fields: int = MAX_FIELDS, introspection: bool = True,
) -> Schema:
    """The schema; parsing and validating a query text the server has seen before costs a lookup.

    Validating a document was half the CPU of an `order(id)` query. The limit
    rule is made once per schema, not per operation, and `Documents` keeps
    each text's parse and validation. Errors are answered and logged by
    `graphql_errors`.
    Without `introspection`, a document asking for `__schema` or `__type` is
    refused by a rule of the same list, so turning it off costs no extension.
    """
    rules: list[type[ASTValidationRule]] = [
        limit_rule(Limits(max_depth=max_depth, max_aliases=max_aliases, max_fields=max_fields))]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    documents = Documents(rules, max_tokens=max_tokens, maxsize=CACHED_DOCUMENTS)
    schema = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(scalar_map=SCALARS),
        execution_context_class=ExecutionContext,
        extensions=[lambda: PreparedDocuments(documents), *extensions],
    )
    read_attributes_directly(schema)
    return schema

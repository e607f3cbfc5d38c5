"""The GraphQL schema (DESIGN §6) and the limits every operation runs under (`graphql_limits`)."""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, NamedTuple

import strawberry
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    Undefined,
    is_leaf_type,
    is_non_null_type,
    parse,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext, validate_document
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

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
        middleware = self.middleware_manager
        self._leaves_read_directly = middleware is None or not middleware.middlewares

    def execute_fields(self, parent_type: GraphQLObjectType, source_value: Any, path: Any,
                       grouped_field_set: Any, position_context: Any) -> Any:
        """An object's fields: those that read a scalar or enum attribute (`Leaf`), and `__typename`, here.

        For every field graphql-core builds its path and a resolve info, calls
        its resolver and completes the value through some thirty Python calls:
        most of an order's fifty fields are plain attributes, and clients such
        as Apollo's ask every object's `__typename`. Here such a field's value
        is the attribute, coerced by the field's own type, as graphql-core's
        would be; the other fields, and a value that the type refuses or a null
        where the schema promises a value, go to graphql-core, which answers,
        raises and locates them as it always does. The answer keeps the order of
        the selection set.
        """
        if not self._leaves_read_directly:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context)
        fields = parent_type.fields
        results: dict[str, Any] = {}
        others: dict[str, Any] = {}
        for response_name, field_details_list in grouped_field_set.items():
            name = field_details_list[0].node.name.value
            field = fields.get(name)
            leaf = None if field is None else field.extensions.get(LEAF)
            if leaf is not None:
                try:
                    value = leaf.read(source_value, leaf.name)
                    if value is None or value is Undefined:
                        if not leaf.required:
                            results[response_name] = None
                            continue
                    elif not isinstance(value, Exception):
                        value = leaf.type.coerce_output_value(value)
                        if value is not None and value is not Undefined:
                            results[response_name] = value
                            continue
                except Exception:  # answered and located by graphql-core's own path, below
                    pass
            elif name == "__typename":  # what graphql-core's own resolver of it answers
                results[response_name] = parent_type.name
                continue
            results[response_name] = None  # its place in the answer, filled below
            others[response_name] = field_details_list
        if not others:
            return results
        answered = super().execute_fields(parent_type, source_value, path, others, position_context)
        if isinstance(answered, dict):
            return _fill(results, others, answered)
        return _filled(results, others, answered)


def _fill(results: dict[str, Any], others: dict[str, Any], answered: dict[str, Any]) -> dict[str, Any]:
    results.update(answered)
    if len(answered) < len(others):  # a field graphql-core left out of the answer
        for response_name in others.keys() - answered.keys():
            del results[response_name]
    return results


async def _filled(results: dict[str, Any], others: dict[str, Any],
                  answered: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    return _fill(results, others, await answered)


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


LEAF = "read_api.leaf"
"""Where a field's `Leaf` is kept among its graphql-core extensions."""


class Leaf(NamedTuple):
    """A scalar or enum field with no resolver of its own nor arguments: its value is an attribute read."""

    read: Callable[[Any, str], Any]
    name: str
    type: GraphQLLeafType
    required: bool


def read_attributes_directly(schema: strawberry.Schema) -> None:
    """Each field with no resolver of its own reads its attribute in one call.

    Strawberry answers such a field through three calls (its basic-field
    wrapper, the field's `get_result`, then the default resolver), and
    graphql-core calls a field's resolver for every field of every object it
    answers: fifty an order, a thirtieth of a fresh `order(id)`. The attribute
    read, and the resolver reading it (the schema's `default_resolver`), are
    the same; a field with a resolver, permissions or extensions is left as
    Strawberry made it. Such a field of a scalar or enum type, without
    arguments, is also marked a `Leaf`, which `ExecutionContext` answers
    without calling the resolver at all.
    """
    read = schema.config.default_resolver
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field in graphql_type.fields.values():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if isinstance(definition, StrawberryField) and definition.is_basic_field \
                    and getattr(field.resolve, "_is_default", False):
                field.resolve = _attribute(read, definition.python_name)
                required = is_non_null_type(field.type)
                value_type = field.type.of_type if required else field.type
                if is_leaf_type(value_type) and not field.args:
                    leaf = Leaf(read, definition.python_name, value_type, required)
                    field.extensions = {**(field.extensions or {}), LEAF: leaf}


def _attribute(read: Callable[[Any, str], Any], name: str) -> Callable[..., Any]:
    def resolve(source: Any, info: GraphQLResolveInfo[Any]) -> Any:
        return read(source, name)

    resolve._is_default = True  # type: ignore[attr-defined]  # as Strawberry marks its own
    return resolve

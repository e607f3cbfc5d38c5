"""How the API's GraphQL operations run: graphql-core's execution, with the shortcuts a read API can take.

An object's fields that read a scalar or enum attribute are answered without
graphql-core's resolve info (`read_attributes_directly`, `Leaf`); the fields an
operation selects are collected once per document where nothing in it depends
on the variables (`KeptCollections`); and an execution's helpers hold it only
weakly, so its state is freed as soon as it has answered. Each shortcut answers
what graphql-core would, errors included: tests/unit/test_read_api_graphql.py
runs the same operations both ways.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import strawberry
from graphql import (
    BREAK,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    OperationDefinitionNode,
    Undefined,
    Visitor,
    is_leaf_type,
    is_non_null_type,
    visit,
)
from graphql.execution.collect_fields import CollectedFields
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField


class ExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """An operation's execution with this module's shortcuts, its state freed as soon as it has answered.

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
        self._collections = COLLECTIONS.of(self.operation, self.fragment_definitions)

    def collect_subfields(self, return_type: GraphQLObjectType, field_details_list: Any) -> CollectedFields:
        """The sub-fields of an object's selection: collected once per document (`KeptCollections`)."""
        kept = self._collections
        if kept is None:
            return super().collect_subfields(return_type, field_details_list)
        key = (return_type, *[id(details.node) for details in field_details_list])
        collected = kept.get(key)
        if collected is None:
            collected = kept[key] = super().collect_subfields(return_type, field_details_list)
        return collected

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


class KeptCollections:
    """The sub-fields each operation selects on each type, kept while its document lives.

    graphql-core collects an object's sub-fields anew in every execution, a
    tenth of a fresh `order(id)`, though clients send the same few documents
    again and again (`schema.Documents` keeps each parsed once). What a
    selection collects depends on the schema's type, the document's nodes, and
    the variables only through directives (`@skip`, `@include`, `@defer`) and
    fragment arguments: an operation with none of these collects the same
    fields every time, and those are kept by the identity of the type and of
    the field nodes. An operation with any of them is collected anew as
    graphql-core always does. The kept fields go when the operation's node is
    freed (`weakref.finalize`), so a node's identity is never taken for another's.
    Used from the event loop that runs the schema's operations, not threads.
    """

    def __init__(self) -> None:
        self._operations: dict[int, dict[tuple[Any, ...], CollectedFields] | None] = {}

    def __len__(self) -> int:
        """How many operations' collections are kept."""
        return len(self._operations)

    def of(self, operation: OperationDefinitionNode,
           fragments: dict[str, FragmentDefinitionNode]) -> dict[tuple[Any, ...], CollectedFields] | None:
        """The operation's kept collections, or None when they may depend on its variables."""
        key = id(operation)
        if key in self._operations:
            return self._operations[key]
        varying = _Varying()
        for node in (operation, *fragments.values()):
            visit(node, varying)
        kept: dict[tuple[Any, ...], CollectedFields] | None = None if varying.found else {}
        self._operations[key] = kept
        weakref.finalize(operation, self._operations.pop, key, None)
        return kept


class _Varying(Visitor):
    """Finds what may make a selection depend on the variables: a directive, or a fragment's arguments."""

    found = False

    def enter_directive(self, *_: Any) -> Any:
        self.found = True
        return BREAK

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> Any:
        if getattr(node, "arguments", None):
            self.found = True
            return BREAK
        return None

    def enter_fragment_definition(self, node: FragmentDefinitionNode, *_: Any) -> Any:
        if getattr(node, "variable_definitions", None):
            self.found = True
            return BREAK
        return None


COLLECTIONS = KeptCollections()
"""The process's kept collections, of every schema: each is keyed by its types, which are the schema's own."""


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

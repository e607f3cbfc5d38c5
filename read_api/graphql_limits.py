"""How much one GraphQL operation may ask for: its depth, its aliases and its fields.

One validation rule measures all three, so a document over a limit is refused
with `extensions.code` before any resolver runs. Strawberry's QueryDepthLimiter
and MaxAliasesLimiter walk a fragment again at every spread of it, so a few
hundred bytes of fragments that each spread the next one twice cost them
exponential time on the event loop; here each fragment is measured once and its
measure reused, so the work is linear in the document whatever it spreads.

As with Strawberry's depth limiter, a root field is at depth 0 and introspection
fields (`__schema`, `__type`, `__typename`) count towards neither depth nor
fields; their aliases count like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

MAX_DEPTH = 10
"""Deep enough for orders -> edges -> node -> saga -> steps -> name; introspection is not counted."""
MAX_ALIASES = 15
"""The dashboard and the README use none; a client comparing a few lists side by side fits."""
MAX_FIELDS = 200
"""Fields once fragments are spread; the dashboard's largest operation (placeOrder and the order) has 30."""
MAX_TOKENS = 5000
"""Bounds the parser's work: a placeOrder of 100 lines written out in the query text fits."""

TOO_DEEP = "TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_FIELDS = "TOO_MANY_FIELDS"


@dataclass(frozen=True)
class Measure:
    """A selection set's deepest field below it (0: only leaves), its fields and its aliases."""

    depth: int = 0
    fields: int = 0
    aliases: int = 0

    def beside(self, other: Measure) -> Measure:
        return Measure(max(self.depth, other.depth), self.fields + other.fields, self.aliases + other.aliases)


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_fields: int


class _Ruler:
    """Measures the operations of one document, each fragment once."""

    def __init__(self, document: DocumentNode) -> None:
        self._fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._measured: dict[str, Measure] = {}
        self._measuring: set[str] = set()

    def selections(self, selection_set: SelectionSetNode | None) -> Measure:
        total = Measure()
        for selection in () if selection_set is None else selection_set.selections:
            if isinstance(selection, FieldNode):
                total = total.beside(self._field(selection))
            elif isinstance(selection, InlineFragmentNode):
                total = total.beside(self.selections(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                total = total.beside(self._fragment(selection.name.value))
        return total

    def _field(self, field: FieldNode) -> Measure:
        alias = 1 if field.alias is not None else 0
        if field.name.value.startswith("__"):
            return Measure(aliases=alias + self.selections(field.selection_set).aliases)
        if field.selection_set is None:
            return Measure(fields=1, aliases=alias)
        below = self.selections(field.selection_set)
        return Measure(below.depth + 1, below.fields + 1, below.aliases + alias)

    def _fragment(self, name: str) -> Measure:
        if name in self._measured:
            return self._measured[name]
        fragment = self._fragments.get(name)
        if fragment is None or name in self._measuring:
            return Measure()  # unknown fragments and cycles are the specified rules' to report
        self._measuring.add(name)
        measure = self.selections(fragment.selection_set)
        self._measuring.discard(name)
        self._measured[name] = measure
        return measure


def limit_rule(limits: Limits) -> type[ValidationRule]:
    """The validation rule for these limits. Make it once per schema: the validation cache keys on it."""

    class OperationLimits(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            ruler = _Ruler(context.document)
            for definition in context.document.definitions:
                if isinstance(definition, OperationDefinitionNode):
                    refusal = _refusal(definition, ruler.selections(definition.selection_set), limits)
                    if refusal is not None:
                        context.report_error(refusal)

    return OperationLimits


def _refusal(operation: OperationDefinitionNode, measure: Measure, limits: Limits) -> GraphQLError | None:
    """The first limit the operation is over, as the error that refuses it; None when it is within them."""
    name = operation.name.value if operation.name is not None else "anonymous"
    if measure.depth > limits.max_depth:
        message, code, limit = (f"'{name}' exceeds maximum operation depth of {limits.max_depth}",
                                TOO_DEEP, limits.max_depth)
    elif measure.aliases > limits.max_aliases:
        message, code, limit = (f"'{name}' uses {measure.aliases} aliases; at most {limits.max_aliases} "
                                "are allowed", TOO_MANY_ALIASES, limits.max_aliases)
    elif measure.fields > limits.max_fields:
        message, code, limit = (f"'{name}' selects {measure.fields} fields; at most {limits.max_fields} "
                                "are allowed", TOO_MANY_FIELDS, limits.max_fields)
    else:
        return None
    extensions: dict[str, Any] = {"code": code, "limit": limit}
    return GraphQLError(message, operation, extensions=extensions)

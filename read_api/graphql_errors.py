"""What a GraphQL error tells the client and the log.

A client's mistake (an error raised on purpose with `extensions.code`, a
document that does not parse or validate, a refused limit or permission)
reaches the client as it is, always with a code, and is logged as one INFO
line. Any other failure is ours: the client gets `internal error` with code
INTERNAL and a request id, never the exception's text, and the log gets the
traceback once, at ERROR, with that id.

Strawberry hands `process_errors` the very list of errors the answer is built
from, on every path (resolvers, extensions, subscriptions) and before any
extension sees it, so replacing an entry there is the one place no failure
gets past unmasked.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import uuid4

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.types import ExecutionContext

log = logging.getLogger("read_api.graphql")

INTERNAL = "INTERNAL"
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
_TOKEN_LIMIT = "tokens. Parsing aborted"
"""The end of graphql-core's message when a document is over the parser's token limit."""


class Schema(strawberry.Schema):
    """Strawberry's schema, answering and logging errors as this module says."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        operation = _operation_name(execution_context)
        for index, error in enumerate(errors):
            errors[index] = answer(error, operation)


def answer(error: GraphQLError, operation: str = "anonymous") -> GraphQLError:
    """The error as the client gets it, logged once: a coded mistake, or an INTERNAL failure with an id."""
    code = code_of(error)
    if code is None:
        request_id = uuid4().hex
        log.error("GraphQL operation %s failed, request %s: %s", operation, request_id, error.message,
                  exc_info=_root(error))
        return GraphQLError("internal error", error.nodes, path=error.path,
                            extensions={"code": INTERNAL, "requestId": request_id})
    log.info("GraphQL operation %s refused, %s: %s", operation, code, " ".join(error.message.split()))
    if (error.extensions or {}).get("code") == code:
        return error
    extensions: dict[str, Any] = {**(error.extensions or {}), "code": code}
    return GraphQLError(error.message, error.nodes, error.source, error.positions, error.path,
                        extensions=extensions)


def code_of(error: GraphQLError) -> str | None:
    """The code of a client's mistake; None for a failure of the server's own."""
    code = (error.extensions or {}).get("code")
    if isinstance(code, str) and code and code != INTERNAL:
        return code
    if not isinstance(_root(error), GraphQLError):
        return None  # an exception other than a GraphQLError: a bug or a dependency that failed
    if isinstance(error, GraphQLSyntaxError):
        return TOO_MANY_TOKENS if _TOKEN_LIMIT in error.message else PARSE_FAILED
    # Without a path the error came before execution (validation, variables); with one,
    # a resolver's result broke the schema (a null for a non-null field): ours.
    return VALIDATION_FAILED if error.path is None else None


def _root(error: GraphQLError) -> BaseException:
    """The innermost exception behind an error, the one whose traceback says where it began."""
    cause: BaseException = error
    while isinstance(cause, GraphQLError) and cause.original_error is not None:
        cause = cause.original_error
    return cause


def _operation_name(context: ExecutionContext | None) -> str:
    try:
        name = None if context is None else context.operation_name
    except Exception:  # a document that did not parse has no operation to name
        name = None
    # The name is the client's; only a plain one goes to the log.
    return name if name is not None and name.isidentifier() and len(name) <= 64 else "anonymous"

"""The old REST envelope: `{success, message, data, error{code, message, details}, timestamp, request_id}`.

The old clients decode money into float64, so amounts go out as JSON numbers,
but written digit for digit from the Decimal (`1299.99`, `0.10`), never through
a float. A refusal carries one of the old API's codes, chosen by its HTTP status;
the refused field goes in `error.details.field`, and the domain's own, finer
code (PRICE_MISMATCH, UNKNOWN_PRODUCT ...) in `error.details.reason`.

`problem_response` is the one way to refuse a REST request: the permission layer
calls it for 401 and 403 too, and `error_document` serves code that only has the
ASGI scope (a middleware refusing before any route runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID, uuid4

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from read_api.errors import Problem

BAD_REQUEST: Final = "BAD_REQUEST"
UNAUTHENTICATED: Final = "UNAUTHENTICATED"
FORBIDDEN: Final = "FORBIDDEN"
NOT_FOUND: Final = "NOT_FOUND"
METHOD_NOT_ALLOWED: Final = "METHOD_NOT_ALLOWED"
PAYLOAD_TOO_LARGE: Final = "PAYLOAD_TOO_LARGE"
INTERNAL_SERVER_ERROR: Final = "INTERNAL_SERVER_ERROR"

CODES: Final[Mapping[int, str]] = {
    400: BAD_REQUEST, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND, 405: METHOD_NOT_ALLOWED,
    413: PAYLOAD_TOO_LARGE, 500: INTERNAL_SERVER_ERROR,
}
"""The code `error.code` carries for each status a REST route answers."""

STATUS_OF_CODE: Final[Mapping[str, int]] = {code: status for status, code in CODES.items()}

STATUS_OF_REFUSAL: Final[Mapping[str, int]] = {UNAUTHENTICATED: 401, FORBIDDEN: 403}
"""Domain errors carrying these codes (raised by the permission layer) are not the input's fault."""

MAX_REQUEST_ID = 200


class ExactJSONResponse(JSONResponse):
    """JSON whose Decimals are numbers written exactly; UUIDs and aware datetimes as RFC 3339 strings."""

    def render(self, content: Any) -> bytes:
        return encode(content)


def encode(document: Any) -> bytes:
    return orjson.dumps(document, default=_beyond_orjson)


def _beyond_orjson(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        # A Decimal's text is a valid JSON number: it goes in as it is, with every digit it has.
        return orjson.Fragment(str(value))
    if isinstance(value, UUID):  # a driver's own UUID class, which orjson does not take for one
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r} has no exact JSON form")


def request_id_of(request: Request) -> str:
    """The client's X-Request-ID, or one made for this request; the same for every answer and log line."""
    state = request.state
    found = getattr(state, "request_id", None)
    if not isinstance(found, str):
        found = fresh_request_id(request.headers.get("x-request-id"))
        state.request_id = found
    return found


def fresh_request_id(given: str | None) -> str:
    """The id a client sent, when it is a sensible one, else a new one."""
    return given if given and len(given) <= MAX_REQUEST_ID and given.isprintable() else str(uuid4())


def answer(
    request: Request, data: BaseModel, *, status: int = 200, message: str = "ok"
) -> ExactJSONResponse:
    """A successful answer: `data` as its model dumps it (Decimals stay Decimals, written exactly)."""
    request_id = request_id_of(request)
    body = {
        "success": True, "message": message, "data": data.model_dump(), "error": None,
        "timestamp": datetime.now(UTC), "request_id": request_id,
    }
    return ExactJSONResponse(body, status_code=status, headers={"x-request-id": request_id})


def problem_response(
    request: Request, problem: Problem, status: int, *, headers: Mapping[str, str] | None = None,
) -> ExactJSONResponse:
    """A refusal in the envelope: `error.code` is the old API's code for `status`.

    The problem's own code, when it is finer than that (PRICE_MISMATCH under
    BAD_REQUEST), goes in `error.details.reason`, and its field in `error.details.field`.
    """
    request_id = request_id_of(request)
    body = error_document(problem, status, request_id)
    headers = {**(headers or {}), "x-request-id": request_id}
    return ExactJSONResponse(body, status_code=status, headers=headers)


def error_document(problem: Problem, status: int, request_id: str) -> dict[str, Any]:
    """The envelope of a refusal, for code that answers from the ASGI scope rather than a route."""
    code = CODES.get(status, BAD_REQUEST if status < 500 else INTERNAL_SERVER_ERROR)
    field, reason = problem.field or None, None if problem.code == code else problem.code
    # Both keys or none, as the OpenAPI document declares them.
    details = None if field is None and reason is None else {"field": field, "reason": reason}
    return {
        "success": False, "message": problem.message, "data": None,
        "error": {"code": code, "message": problem.message, "details": details},
        "timestamp": datetime.now(UTC), "request_id": request_id,
    }

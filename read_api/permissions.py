"""Who may see and do what: the one place that decides it (DESIGN §10).

Every GraphQL root field and every HTTP route is listed here with the rule that
opens it; one that is not listed is closed, so a new field or route refuses
everyone until it is added below. What a rule lets through is decided by
`Access`, which the resolvers and routes also ask about single orders: a
customer sees only its own, and another customer's order is exactly as absent
as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final
from uuid import UUID

from domain.base import DomainError
from read_api.identity import ADMIN, CUSTOMER, OPERATOR, AuthenticationError, Principal

UNAUTHENTICATED: Final = "UNAUTHENTICATED"
FORBIDDEN: Final = "FORBIDDEN"


class Rule(Enum):
    PUBLIC = "anyone, without a token"
    ORDERS = "a customer for its own orders, an operator for every order"
    OPERATOR = "an operator"
    ADMIN = "an admin"
    GRAPHQL = "anyone may send a document; each of its root fields is then decided by GRAPHQL_FIELDS"


GRAPHQL_FIELDS: Mapping[str, Rule] = {
    "Query.products": Rule.PUBLIC,
    "Query.product": Rule.PUBLIC,
    "Query.order": Rule.ORDERS,
    "Query.orders": Rule.ORDERS,
    "Query.saga": Rule.ORDERS,
    "Query.events": Rule.OPERATOR,
    "Query.orderAt": Rule.OPERATOR,
    "Query.deadLetters": Rule.OPERATOR,
    "Query.projections": Rule.OPERATOR,
    "Query.streamIntegrity": Rule.OPERATOR,
    "Query.sagas": Rule.OPERATOR,
    "Mutation.placeOrder": Rule.ORDERS,
    "Mutation.cancelOrder": Rule.ORDERS,
    "Mutation.restock": Rule.ADMIN,
    "Mutation.redriveDeadLetter": Rule.ADMIN,
    "Mutation.forgetCustomer": Rule.ADMIN,
    "Mutation.retrySaga": Rule.ADMIN,
    "Subscription.orderUpdated": Rule.ORDERS,
}
"""Each root field of the schema, `Type.field` as clients spell it, and who may ask for it."""

GRAPHQL_NESTED_FIELDS: Mapping[str, Rule] = {
    "Order.integrity": Rule.OPERATOR,
}
"""Fields below the root that not everyone who may reach them may see: null for the others."""

ROUTES: Mapping[tuple[str, str], Rule] = {
    ("GET", "/healthz"): Rule.PUBLIC,
    ("GET", "/readyz"): Rule.PUBLIC,
    ("GET", "/api/v1/health"): Rule.PUBLIC,
    ("GET", "/metrics"): Rule.PUBLIC,
    ("GET", "/"): Rule.PUBLIC,
    ("GET", "/dashboard"): Rule.PUBLIC,  # the page only; what it shows comes through /graphql
    ("GET", "/graphql"): Rule.GRAPHQL,
    ("POST", "/graphql"): Rule.GRAPHQL,
    ("WEBSOCKET", "/graphql"): Rule.GRAPHQL,
    ("POST", "/api/v1/orders"): Rule.ORDERS,
    ("GET", "/api/v1/orders/{order_id}"): Rule.ORDERS,
    ("GET", "/api/v1/customers/{customer_id}/orders"): Rule.ORDERS,
    ("GET", "/api/v1/orders/{order_id}/payment"): Rule.ORDERS,
    ("GET", "/api/v1/orders/{order_id}/shipment"): Rule.ORDERS,
}
"""Each HTTP route (method and path template) and who may call it. HEAD goes with GET."""

DOCUMENTATION_ROUTES = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
"""Open exactly when introspection is: they describe the API, as introspection does."""


class AccessDeniedError(DomainError):
    """Refused by the permission layer; `code` is UNAUTHENTICATED (no or bad credential) or FORBIDDEN."""


class UnauthenticatedError(AccessDeniedError):
    code = UNAUTHENTICATED


class ForbiddenError(AccessDeniedError):
    code = FORBIDDEN


NOBODY = UUID(int=0)
"""The customer filter that matches no order: what a customer gets when it asks for another's."""


@dataclass(frozen=True)
class Access:
    """What one caller may do: built once per request (or WebSocket connection) from its credential."""

    principal: Principal
    problem: str | None = None
    """Why the credential presented was refused; such a caller is refused everything but PUBLIC."""

    @classmethod
    def of(cls, authenticate: Callable[[str | None], Principal], authorization: str | None) -> Access:
        """`authenticate` is an `Authenticator.principal`; a refused credential is kept as the problem."""
        try:
            return cls(authenticate(authorization))
        except AuthenticationError as error:
            return cls(Principal(None, frozenset()), problem=str(error))

    def require(self, rule: Rule, what: str) -> None:
        """Raise unless the caller may use what `rule` guards; `what` names it in the refusal."""
        if rule in (Rule.PUBLIC, Rule.GRAPHQL):
            return
        if self.problem is not None:
            raise UnauthenticatedError(self.problem)
        needed = {Rule.ORDERS: (CUSTOMER, OPERATOR), Rule.OPERATOR: (OPERATOR,), Rule.ADMIN: (ADMIN,)}[rule]
        if any(self.principal.has(scope) for scope in needed):
            return
        if not self.principal.authenticated:
            raise UnauthenticatedError(f"{what} needs a bearer token")
        raise ForbiddenError(f"{what} needs the {' or '.join(needed)} scope")

    def require_field(self, type_name: str, field: str) -> None:
        """A GraphQL root field: its rule from GRAPHQL_FIELDS; a field not listed there is closed."""
        name = f"{type_name}.{field}"
        rule = GRAPHQL_FIELDS.get(name)
        if rule is None:
            self.require(Rule.OPERATOR, name)  # a bad token is still told so before anything else
            raise ForbiddenError(f"{name} is not open to anyone")
        self.require(rule, name)

    def may_see(self, type_name: str, field: str) -> bool:
        """A field below the root: whether its rule in GRAPHQL_NESTED_FIELDS lets the caller see it."""
        try:
            name = f"{type_name}.{field}"
            self.require(GRAPHQL_NESTED_FIELDS.get(name, Rule.ADMIN), name)
        except AccessDeniedError:
            return False
        return True

    def require_route(self, method: str, path: str, *, documentation: bool) -> None:
        if path in DOCUMENTATION_ROUTES and method in ("GET", "HEAD"):
            if documentation:
                return
            raise ForbiddenError(f"{path} is off; it is on with introspection")
        rule = ROUTES.get(("GET" if method == "HEAD" else method, path))
        if rule is None:
            raise ForbiddenError(f"{method} {path} is not open to anyone")
        self.require(rule, f"{method} {path}")

    @property
    def sees_every_order(self) -> bool:
        return self.problem is None and self.principal.has(OPERATOR)

    def sees_order_of(self, customer_id: UUID) -> bool:
        """Whether an order of `customer_id` is visible at all; when not, it is answered as absent."""
        return self.sees_every_order or (self.problem is None and self.principal.customer_id == customer_id)

    def customer_filter(self, requested: UUID | None) -> UUID | None:
        """The customer whose orders a listing may show: a customer's own, whatever it asked for."""
        if self.sees_every_order:
            return requested
        own = self.principal.customer_id
        if own is None:
            return NOBODY
        return own if requested in (None, own) else NOBODY

    def placing_for(self, requested: object) -> object:
        """The customer an order is placed for: a customer places for itself, no one else."""
        own = self.principal.customer_id
        if own is None or (self.sees_every_order and requested not in (None, "")):
            return requested
        if requested in (None, ""):
            return str(own)
        try:
            same = UUID(str(requested)) == own
        except ValueError:
            same = False
        if not same:
            raise ForbiddenError("a customer places orders for itself only", field="customer_id")
        return requested

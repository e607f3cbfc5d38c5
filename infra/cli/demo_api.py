"""How `saga demo` talks to the API: GraphQL over HTTP, with the caller's bearer token when it has one.

In `dev` mode every caller is operator and admin, so no token is needed. In
`required` mode placing orders needs a token: an operator's (or an admin's)
places them for random customers, a customer's places every one for that
customer, since a customer may place orders for itself only (DESIGN §10).
Which of these the caller is, the API says: the demo asks before it places.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from read_api.permissions import FORBIDDEN, UNAUTHENTICATED

REQUEST_TIMEOUT = 15.0  # seconds for one HTTP request
PRODUCTS = "query { products { id name available } }"
EVERY_ORDER = "query { projections { name } }"  # an operator's view: answered, the caller sees every order
OWN_ORDERS = "query { orders(first: 1) { edges { cursor } } }"  # a customer's view of its own orders
REFUSED = frozenset({FORBIDDEN, UNAUTHENTICATED})


class UnreachableError(Exception):
    """The API did not answer, or did not answer as the GraphQL API of this system."""


class EmptyCatalogueError(Exception):
    """The API answered, but has no products to order."""


class TokenRefusedError(Exception):
    """The API asks for a token to place orders, and none was given or the one given was refused."""


class GraphQLError(ValueError):
    """The first error of a GraphQL answer; its text is `CODE: message`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Stocked:
    """A product of the catalogue and the units of it that an order can still take."""

    id: str
    name: str
    available: int


def api_client(url: str, token: str | None, connections: int) -> httpx.AsyncClient:
    """A client for the API at `url` that sends `token` as a bearer token on every request."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {} if not token else {"Authorization": f"Bearer {token}"}
    return httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT, limits=limits, headers=headers)


async def graphql(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> Any:
    """The `data` of a GraphQL answer; raises httpx errors, or GraphQLError for the first GraphQL error."""
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    response.raise_for_status()
    try:
        body = response.json()
    except ValueError:
        raise GraphQLError("INVALID_RESPONSE", response.text[:200]) from None
    if body.get("errors"):
        first = body["errors"][0]
        code = (first.get("extensions") or {}).get("code") or "GRAPHQL_ERROR"
        raise GraphQLError(str(code), str(first.get("message", "")))
    return body["data"]


async def ask(client: httpx.AsyncClient, url: str, what: str, query: str) -> Any:
    """`graphql`, with an API that does not answer, or answers as something else, as UnreachableError.

    A GraphQL error refusing the caller (FORBIDDEN, UNAUTHENTICATED) is raised as it is.
    """
    try:
        return await graphql(client, query)
    except httpx.TransportError as error:
        reason = str(error) or type(error).__name__
        raise UnreachableError(f"cannot reach the API at --url {url}: {reason}") from None
    except httpx.HTTPStatusError as error:
        answer = f"HTTP {error.response.status_code}"
        raise UnreachableError(f"the API at --url {url} answered the {what} query with {answer}") from None
    except GraphQLError as error:
        if error.code in REFUSED:
            raise
        raise UnreachableError(f"the API at --url {url} did not answer the {what} query: {error}") from None


async def fetch_products(client: httpx.AsyncClient, url: str) -> list[Stocked]:
    """The catalogue with its stock; raises UnreachableError, or EmptyCatalogueError when it is empty."""
    try:
        data = await ask(client, url, "products", PRODUCTS)
        products = [Stocked(str(p["id"]), str(p["name"]), int(p["available"])) for p in data["products"]]
    except (GraphQLError, KeyError, TypeError, ValueError) as error:
        raise UnreachableError(f"the API at --url {url} did not answer the products query: {error}") from None
    if not products:
        raise EmptyCatalogueError(f"the API at --url {url} has no products to order; run `saga seed` first")
    return products


async def places_for_itself(client: httpx.AsyncClient, url: str, token: str | None) -> bool:
    """Whether the caller may place orders for itself only (a customer's token), not for any customer.

    Raises TokenRefusedError when it may place none: no token, a refused one, or one without the scope.
    """
    try:
        await ask(client, url, "projections", EVERY_ORDER)
        return False
    except GraphQLError as error:
        if error.code == UNAUTHENTICATED:
            raise TokenRefusedError(unauthenticated(url, token, error.message)) from None
    try:
        await ask(client, url, "orders", OWN_ORDERS)
        return True
    except GraphQLError as error:
        raise TokenRefusedError(
            f"the token may not place orders at --url {url} ({error.message}); "
            "give an operator's or a customer's (saga token --operator)") from None


def unauthenticated(url: str, token: str | None, why: str) -> str:
    if not token:
        return (f"the API at --url {url} needs a token to place orders: give --token or set SAGA_TOKEN "
                "(saga token --operator; --admin to restock too)")
    return (f"the API at --url {url} refused the token ({why}); give a valid one with --token or SAGA_TOKEN "
            "(saga token --operator)")

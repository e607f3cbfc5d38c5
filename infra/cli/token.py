"""`saga token`: a bearer token this API accepts, signed with AUTH_JWT_SECRET."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from uuid import UUID

import typer

from infra.cli.base import ExitCode, exit_codes, fail, load_settings, paragraphs
from read_api.identity import ADMIN, CUSTOMER, OPERATOR, AuthConfigError, mint_token

HELP = paragraphs(
    "Mint a bearer token this API accepts, for local use and scripts.",
    "Signs with AUTH_JWT_SECRET (and AUTH_JWT_ISSUER, AUTH_JWT_AUDIENCE when set) and prints the token "
    "on stdout. Pass it as `Authorization: Bearer <token>`, or in a WebSocket's connection_init payload. "
    "A customer token sees and places only that customer's orders; an operator token sees every order "
    "and the audit and operations views; an admin token is operator and admin.",
    "Examples:\n  saga token --customer 7b0e3c2a-1111-4a55-9c1e-2f3a4b5c6d7e\n"
    "  TOKEN=$(saga token --operator --ttl 8h)\n"
    "  curl -H \"Authorization: Bearer $(saga token --admin)\" http://127.0.0.1:8000/graphql ...",
)
EPILOG = exit_codes("0  the token is printed",
                  "2  not exactly one of --customer, --operator, --admin; a bad --ttl; or no "
                  "AUTH_JWT_SECRET to sign with")

TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _ttl(value: str) -> timedelta:
    text = value.strip().lower()
    unit = text[-1:] if text[-1:] in TTL_UNITS else "s"
    number = text[:-1] if text[-1:] in TTL_UNITS else text
    if not number.isdigit() or int(number) == 0:
        raise typer.BadParameter(f"{value!r} is not a duration: a whole number, then s, m, h or d (1h, 7d)")
    return timedelta(seconds=int(number) * TTL_UNITS[unit])


def token(
    customer: Annotated[str | None, typer.Option(
        metavar="CUSTOMER_ID", help="A customer's token: its id (a UUID) is the token's subject.")] = None,
    operator: Annotated[bool, typer.Option("--operator", help="An operator's token.")] = False,
    admin: Annotated[bool, typer.Option("--admin", help="An admin's token (operator and admin).")] = False,
    ttl: Annotated[str, typer.Option(help="How long it is valid: 90m, 1h, 7d.")] = "1h",
    subject: Annotated[str | None, typer.Option(
        help="The subject of an operator's or admin's token. Default: operator or admin.")] = None,
) -> None:
    if [customer is not None, operator, admin].count(True) != 1:
        fail(ExitCode.USAGE, "give exactly one of --customer ID, --operator, --admin")
    lifetime = _ttl(ttl)
    if customer is not None:
        try:
            subject, scopes = str(UUID(customer)), [CUSTOMER]
        except ValueError:
            fail(ExitCode.USAGE, f"--customer: {customer!r} is not a customer id (a UUID)")
    else:
        scopes = [OPERATOR, ADMIN] if admin else [OPERATOR]
        subject = subject or ("admin" if admin else "operator")
    try:
        minted = mint_token(load_settings(), subject=subject, scopes=scopes, ttl=lifetime)
    except AuthConfigError as error:
        fail(ExitCode.USAGE, f"{error}; set AUTH_JWT_SECRET (the API must have the same one)")
    typer.echo(minted)

"""`saga forget CUSTOMER_ID`: forget a customer as the `forgetCustomer` mutation does (`commands.privacy`)."""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

import typer

from commands.privacy import OrdersInFlightError, forget_customer
from infra.cli.base import (
    DATABASE,
    NO_STORE,
    ExitCode,
    console,
    exit_codes,
    fail,
    open_stored_system,
    paragraphs,
)

HELP = paragraphs(
    "Forget a customer: their orders in flight end first, then their personal data reads [erased].",
    "Every order of the customer still in flight is asked to cancel, and the saga refunds and releases what "
    "was done; once none is in flight, every order of theirs is marked erased, the forgetting is recorded "
    "with who asked, and the customer's key is deleted, so that their shipping address can no longer be "
    "read from the events, by anyone. Amounts, items and statuses stay. It cannot be undone; asking again "
    "changes nothing, or erases orders placed since. The roles must be running for orders in flight to "
    "end. " + DATABASE,
    "Examples:\n  saga forget 0b7e6a52-5d3c-4f0e-9a61-3c1f2e4d5b6a\n"
    "  saga forget 0b7e6a52-5d3c-4f0e-9a61-3c1f2e4d5b6a --yes --by 'support ticket 4711'",
)
EPILOG = exit_codes(
    "0  forgotten (or forgotten before)", "1  an order in flight did not end in time: nothing was erased",
    "2  CUSTOMER_ID is not a UUID, the question was not answered, or a bad environment variable",
    NO_STORE,
)


def _customer_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a customer id (a UUID)") from None


def forget(
    customer_id: Annotated[UUID, typer.Argument(
        metavar="CUSTOMER_ID", parser=_customer_id, show_default=False, help="The customer's id (a UUID).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    requested_by: Annotated[str, typer.Option(
        "--by", help="Who asked, recorded with the forgetting.")] = "saga forget",
    wait: Annotated[float, typer.Option(
        "--wait", min=0, help="Seconds to wait for the customer's orders in flight to end.")] = 60.0,
) -> None:
    if not yes and not _confirmed(f"Forget customer {customer_id}? This cannot be undone."):
        fail(ExitCode.USAGE, "nothing was forgotten (answer yes, or pass --yes)")
    with open_stored_system() as system:
        try:
            done = asyncio.run(forget_customer(
                system.orders, system.personal_data, customer_id, requested_by, within=wait,
            ))
        except OrdersInFlightError as error:
            fail(ExitCode.FAILED, error.message)
    if done.forgotten_before and not done.key_deleted:
        console.print(f"customer {customer_id} was forgotten before; {len(done.orders)} order(s), all erased")
        return
    cancelled = f", {len(done.cancelled)} cancelled first" if done.cancelled else ""
    console.print(f"forgot customer {customer_id}: {len(done.orders)} order(s) erased{cancelled}")


def _confirmed(question: str) -> bool:
    try:
        return typer.confirm(question, default=False)
    except typer.Abort:  # Ctrl-C, or no answer to read (stdin closed)
        console.print()
        return False

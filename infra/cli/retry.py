"""`saga retry ORDER_ID`: resume a saga that NEEDS_ATTENTION, as the `retrySaga` mutation does.

An operator at the shell mends what kept failing (a payment gateway, a carrier)
and then resumes the stuck compensation, without an API or a token: the command
records the retry in the saga's own store, and the running roles send the undo
again. The saga refuses anything else, so a retry of a saga that is fine writes nothing.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer

from domain.base import InvalidStateError, NotFoundError
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
    "Resume an order's saga that NEEDS_ATTENTION: its stuck undo is sent again, with fresh attempts.",
    "A saga needs attention when a refund, a stock release or a shipment's cancellation went unconfirmed "
    "through COMPENSATION_ATTEMPTS attempts (`sagas(status: NEEDS_ATTENTION)` lists them). Mend what kept "
    "failing first; then this command records the retry, with who asked, in the saga's timeline, and the "
    "running roles send the undo again until the order is cancelled. A saga in any other status is "
    "refused and nothing is written. " + DATABASE,
    "Examples:\n  saga retry 0b7e6a52-5d3c-4f0e-9a61-3c1f2e4d5b6a\n"
    "  saga retry 0b7e6a52-5d3c-4f0e-9a61-3c1f2e4d5b6a --yes --by 'ticket 4711'",
)
EPILOG = exit_codes(
    "0  the retry is recorded", "1  the saga does not need attention: nothing was written",
    "2  ORDER_ID is not a UUID, the question was not answered, or a bad environment variable",
    NO_STORE, "4  no saga for that order",
)


def _order_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an order id (a UUID)") from None


def retry(
    order_id: Annotated[UUID, typer.Argument(
        metavar="ORDER_ID", parser=_order_id, show_default=False,
        help="The order's id (a UUID) whose saga needs attention.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask first.")] = False,
    requested_by: Annotated[str, typer.Option(
        "--by", help="Who asked, recorded in the saga's timeline.")] = "saga retry",
) -> None:
    if not yes and not _confirmed(f"Send the stuck undo of order {order_id}'s saga again?"):
        fail(ExitCode.USAGE, "nothing was retried (answer yes, or pass --yes)")
    with open_stored_system() as system:
        try:
            system.sagas.retry_saga(order_id, requested_by)
        except NotFoundError as error:
            fail(ExitCode.NOT_FOUND, f"{error.message} (ORDER_ID)")
        except InvalidStateError as error:
            fail(ExitCode.FAILED, f"{error.message}: nothing was retried (ORDER_ID)")
        saga = system.sagas.get_saga(order_id)
    awaited = saga.state.compensations_awaited
    undo = f": the {awaited[0]} undo is sent again" if awaited else ""
    console.print(f"saga of order {order_id} resumed ({saga.status}){undo}", highlight=False)


def _confirmed(question: str) -> bool:
    try:
        return typer.confirm(question, default=False)
    except typer.Abort:  # Ctrl-C, or no answer to read (stdin closed)
        console.print()
        return False

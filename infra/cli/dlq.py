"""`saga dlq list` and `saga dlq redrive`: the parked messages, and sending one back."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Column, Table

from infra.cli.base import (
    BAD_ENV,
    BROKER,
    NO_BROKER,
    ExitCode,
    console,
    exit_codes,
    fail,
    load_settings,
    out,
    paragraphs,
    started_bus,
)
from infra.messaging.bus import DeadLetter
from infra.messaging.consumers import SAGA_QUEUE
from infra.runtime import CONTEXT_ROLES
from infra.settings import Settings

QUEUES = (*CONTEXT_ROLES, SAGA_QUEUE)

dlq = typer.Typer(
    help=paragraphs(
        "List and re-drive parked (dead-lettered) messages.",
        "A message is parked after its last retry, or at once when it cannot be parsed or the domain "
        "refuses it. " + BROKER,
    ),
    no_args_is_help=True,
)



def _queue(value: str | None) -> str | None:
    if value is not None and value not in QUEUES:
        raise typer.BadParameter(f"no queue {value!r}; choose from {', '.join(QUEUES)}")
    return value


@dlq.command(
    name="list",
    help=paragraphs(
        "Show the parked messages with their errors.",
        "Each row gives the id that `saga dlq redrive` takes, the message's type and queue, how many times "
        "it was tried, when it was parked, and the error. " + BROKER,
        "Examples:\n  saga dlq list\n  saga dlq list payments",
    ),
    epilog=exit_codes("0  listed, even when nothing is parked",
                      "2  an unknown QUEUE, or a bad environment variable", NO_BROKER),
)
def dlq_list(
    queue: Annotated[str | None, typer.Argument(
        metavar="QUEUE", callback=_queue, show_default=False,
        help=f"Only this consumer queue: {', '.join(QUEUES)}. Default: every queue.")] = None,
) -> None:
    parked = asyncio.run(_dead_letters(load_settings(), queue))
    if not parked:  # no empty table: the count says it
        console.print(f"0 parked message(s){f' on {queue}' if queue else ''}")
        return
    # The id is what `dlq redrive` takes: whole on one line, even in 80 columns, and the rest beside it.
    table = Table(Column("id", no_wrap=True), Column("parked message", overflow="fold"))
    for letter in parked:
        parked_at = letter.parked_at.isoformat(timespec="seconds")
        table.add_row(letter.id, f"{letter.message_type} on {letter.queue}\n"
                      f"{letter.attempts} attempt(s), parked {parked_at}\n{letter.error}")
    out.print(table)
    console.print(f"{len(parked)} parked message(s)")


@dlq.command(
    name="redrive",
    help=paragraphs(
        "Send one parked message back to its queue, as a first attempt.",
        "The message leaves the parked queue and is delivered again with its attempt count reset, so fix "
        "what made it fail first. " + BROKER,
        "Example:\n  saga dlq redrive payments:0123456789abcdef",
    ),
    epilog=exit_codes("0  sent back", BAD_ENV, NO_BROKER, "4  no parked message has that ID"),
)
def dlq_redrive(
    dead_letter_id: Annotated[str, typer.Argument(
        metavar="ID", show_default=False, help="The parked message's id, as `saga dlq list` shows it.")],
) -> None:
    settings = load_settings()
    queue = dead_letter_id.rpartition(":")[0]
    if queue not in QUEUES or not asyncio.run(_redrive(settings, dead_letter_id)):
        fail(ExitCode.NOT_FOUND, f"no parked message {dead_letter_id} (ID); `saga dlq list` shows them")
    console.print(f"re-driven {dead_letter_id}")


async def _dead_letters(settings: Settings, queue: str | None) -> list[DeadLetter]:
    async with started_bus(settings) as bus:
        return await bus.dead_letters(queue)


async def _redrive(settings: Settings, dead_letter_id: str) -> bool:
    async with started_bus(settings) as bus:
        return await bus.redrive(dead_letter_id)


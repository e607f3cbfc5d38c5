"""`saga verify`: recompute the event stores' hash chains, export their heads, check an export.

One line on stdout per broken stream (`broken`), per stream holding events stored before
chaining (`unchained`, at most UNCHAINED_LINES of them; --json lists every one), the summary
on stderr with the events verified per second. `saga audit` shows each of its order's
streams' chains in a line (`order_chains`, `chain_line`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from infra.bootstrap import System
from infra.cli.base import (
    DATABASE,
    NO_STORE,
    ExitCode,
    console,
    exit_codes,
    fail,
    open_stored_system,
    out,
    paragraphs,
)
from infra.eventstore.chain import StreamReport
from infra.eventstore.chain_tables import NoChainTableError
from infra.eventstore.verification import (
    HeadsFileError,
    Verification,
    chained_store,
    export_heads,
    load_heads,
    verify,
)

UNCHAINED_LINES = 10

HELP = paragraphs(
    "Prove that no stored event was altered: recompute every stream's hash chain.",
    "Each event records the hash of the one before it in its stream (SHA-256 over that hash, the stream id, "
    "the version, the topic and the stored bytes). Without STREAM_ID (or with --all) every stream of every "
    "application is checked; a broken one is named in one line: its application, its id, the first bad "
    "version and what differs there (hash mismatch, version missing, events swapped, hash without an "
    "event, hash missing). Events stored before chaining existed are reported as unchained, not broken.",
    "--export-heads FILE writes every stream's last version and hash, for an auditor to keep elsewhere; "
    "--against FILE then proves that each of those heads is still in its chain: a history rewritten after "
    "the export, even re-chained, is found. " + DATABASE,
    "Examples:\n  saga verify --all\n  saga verify --all --export-heads heads-2026-01-31.json\n"
    "  saga verify --all --against heads-2026-01-31.json\n"
    "  saga verify 0b7e6a52-5d3c-4f0e-9a61-3c1f2e4d5b6a --json",
)
EPILOG = exit_codes(
    "0  every chain checked holds (unchained events are not a break)",
    "1  a chain is broken, or an exported head is no longer in its chain",
    "2  a bad option or argument, a heads file that cannot be read or written, or a bad environment variable",
    NO_STORE + "; or a store made before chaining, not migrated since",
    "4  no application holds STREAM_ID",
)


def _stream_id(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a stream id (a UUID)") from None


def verify_command(
    stream_id: Annotated[UUID | None, typer.Argument(
        metavar="STREAM_ID", parser=_stream_id, show_default=False,
        help="One stream (an order, payment, stock, reservation, shipment, notification or saga id)."),
    ] = None,
    every: Annotated[bool, typer.Option(
        "--all", help="Every stream of every application (the default).")] = False,
    export: Annotated[Path | None, typer.Option(
        "--export-heads", metavar="FILE", dir_okay=False, show_default=False,
        help="Write each stream's last version and hash to FILE (JSON).")] = None,
    against: Annotated[Path | None, typer.Option(
        metavar="FILE", dir_okay=False, show_default=False,
        help="Check that every head exported to FILE is still in its chain.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON document on stdout instead of lines.")] = False,
) -> None:
    if every and stream_id is not None:
        raise typer.BadParameter("give a STREAM_ID or --all, not both")
    try:
        expected = None if against is None else load_heads(against)
    except HeadsFileError as error:
        fail(ExitCode.USAGE, str(error))
    with open_stored_system() as system:
        try:
            result = verify(system.applications, stream_id=stream_id, against=expected)
        except NoChainTableError as error:
            fail(ExitCode.UNREACHABLE, f"the event store of {error.application} has no hash table "
                                       f"({error.table}): it was made before events were chained; run "
                                       "`saga migrate` to add it")
    if stream_id is not None and not result.applications:
        fail(ExitCode.NOT_FOUND, f"no application holds a stream {stream_id} (STREAM_ID)")
    try:
        exported = None if export is None else export_heads(result.heads(), export)
    except OSError as error:
        fail(ExitCode.USAGE, f"cannot write {export} (--export-heads): {error.strerror or error}")
    if as_json:
        typer.echo(json.dumps(as_document(result, exported), indent=1))
    else:
        _print(result, export, exported)
    if not result.verified:
        raise typer.Exit(ExitCode.FAILED)


def _print(result: Verification, export: Path | None, exported: int | None) -> None:
    for app in result.applications:
        for report in app.broken:
            out.print(f"broken {app.name} {report.stream_id} at version {report.broken_at}: "
                      f"{report.problem} ({report.detail})", soft_wrap=True, highlight=False)
    unchained = [(app.name, report) for app in result.applications for report in app.unchained]
    for name, report in unchained[:UNCHAINED_LINES]:
        out.print(f"unchained {name} {report.stream_id} versions 1-{report.unchained}: stored before "
                  "chaining began", soft_wrap=True, highlight=False)
    if len(unchained) > UNCHAINED_LINES:
        out.print(f"unchained: {len(unchained) - UNCHAINED_LINES} more stream(s) (--json lists them all)",
                  highlight=False)
    broken = sum(len(app.broken) for app in result.applications)
    loose = sum(app.unchained_events for app in result.applications)
    console.print(
        f"{'verified' if result.verified else 'BROKEN'}: {result.events:,} event(s) in {result.streams:,} "
        f"stream(s) of {len(result.applications)} application(s) in {result.seconds:.2f} s "
        f"({result.events_per_s:,.0f} events/s); {broken} broken stream(s), {loose} unchained event(s)",
        highlight=False, soft_wrap=True)
    if export is not None:
        console.print(f"exported {exported} head(s) to {export}", highlight=False, soft_wrap=True)


def as_document(result: Verification, exported: int | None) -> dict[str, Any]:
    return {
        "verified": result.verified,
        "events": result.events,
        "streams": result.streams,
        "seconds": round(result.seconds, 3),
        "events_per_s": round(result.events_per_s),
        "exported_heads": exported,
        "applications": {
            app.name: {
                "streams": app.streams, "events": app.events, "unchained_events": app.unchained_events,
                "broken": [_stream(report) for report in app.broken],
                "unchained": [_stream(report) for report in app.unchained],
            }
            for app in result.applications
        },
    }


def _stream(report: StreamReport) -> dict[str, Any]:
    return {
        "stream_id": str(report.stream_id), "verified": report.verified, "length": report.length,
        "head_hash": None if report.head_hash is None else report.head_hash.hex(),
        "broken_at": report.broken_at, "problem": None if report.problem is None else str(report.problem),
        "detail": report.detail or None, "unchained": report.unchained,
    }


def order_chains(system: System, order_id: UUID) -> dict[UUID, tuple[str, StreamReport | None]]:
    """For `saga audit`: each stream of the order, by id: its kind and its chain checked."""
    return {
        stream_id: (kind, chained_store(app).verify_stream(stream_id))
        for app in system.applications for kind, stream_id in app.order_streams(order_id).items()
    }


def chain_line(kind: str, stream_id: UUID, report: StreamReport) -> str:
    """One stream's chain in a line of the audit, within 80 columns."""
    where = f"{kind:<12} {stream_id.hex[:8]}  "
    if not report.verified:
        return where + f"hash chain BROKEN at version {report.broken_at}: {report.problem}"
    loose = f", {report.unchained} unchained" if report.unchained else ""
    return where + f"hash chain holds: {report.length} event(s){loose}"

"""Verifying the event stores: every stream's chain recomputed, and the heads an auditor keeps.

`verify` checks every stream of every application (or one stream) from the stored events and
their hashes, each application in one snapshot of its store. `export_heads` writes each
stream's last version and hash to a JSON file for an auditor to keep elsewhere; verifying
`against` such a file proves that every exported head is still in its chain, at that version,
with that hash: a history rewritten after the export, even re-chained from end to end, no
longer holds it. Deleting the last events of a stream together with their hashes leaves a
chain that holds; only an exported head shows that they were there.

The heads file:

    {"format": "saga-chain-heads/1", "exported_at": "2026-01-31T12:00:00+00:00",
     "applications": {"Orders": {"<stream id>": {"version": 7, "hash": "<64 hex digits>"}, ...}, ...}}
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from infra.eventstore.chain import Head, StreamReport, check_stream, missing_stream, streams
from infra.eventstore.chain_tables import ChainedStore, NoChainTableError

HEADS_FORMAT = "saga-chain-heads/1"
Heads = dict[str, dict[UUID, Head]]
"""Exported heads: per application name, per stream."""


class Application(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def recorder(self) -> Any: ...


class HeadsFileError(Exception):
    """A heads file that cannot be read; the message says why."""


@dataclass
class ApplicationReport:
    """One application's streams: how many, and the broken and partly unchained ones."""

    name: str
    streams: int = 0
    events: int = 0
    unchained_events: int = 0
    broken: list[StreamReport] = field(default_factory=list)
    unchained: list[StreamReport] = field(default_factory=list)
    heads: dict[UUID, Head] = field(default_factory=dict)

    def add(self, report: StreamReport) -> None:
        self.streams += 1
        self.events += report.length
        self.unchained_events += report.unchained
        if not report.verified:
            self.broken.append(report)
        elif report.unchained:
            self.unchained.append(report)
        if report.head_hash is not None:
            self.heads[report.stream_id] = (report.head_version, report.head_hash)


@dataclass
class Verification:
    applications: list[ApplicationReport]
    seconds: float

    @property
    def verified(self) -> bool:
        return not any(app.broken for app in self.applications)

    @property
    def events(self) -> int:
        return sum(app.events for app in self.applications)

    @property
    def streams(self) -> int:
        return sum(app.streams for app in self.applications)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def heads(self) -> Heads:
        return {app.name: app.heads for app in self.applications}


def chained_store(app: Application) -> ChainedStore:
    recorder = app.recorder
    if not isinstance(recorder, ChainedStore):
        raise TypeError(f"the event store of {app.name} does not chain its events")
    return recorder


def verify(
    applications: Iterable[Application], *, stream_id: UUID | None = None, against: Heads | None = None,
) -> Verification:
    """Check every stream of the applications (or only `stream_id`), and the heads of `against`.

    With `stream_id`, only the application that holds the stream is reported (none if none does).
    """
    started = time.perf_counter()
    reports = []
    heads = against or {}
    for app in applications:
        expected = _wanted(heads.get(app.name, {}), stream_id)
        report = _verify_application(app, stream_id, expected)
        if report.streams or stream_id is None:
            reports.append(report)
    for name in heads.keys() - {report.name for report in reports}:
        gone = ApplicationReport(name)  # an application of the export that the store no longer has
        for stream, head in _wanted(heads[name], stream_id).items():
            gone.add(missing_stream(stream, head))
        if gone.streams:
            reports.append(gone)
    return Verification(reports, time.perf_counter() - started)


def _wanted(heads: Mapping[UUID, Head], stream_id: UUID | None) -> Mapping[UUID, Head]:
    if stream_id is None:
        return heads
    return {stream_id: heads[stream_id]} if stream_id in heads else {}


def _verify_application(
    app: Application, stream_id: UUID | None, expected: Mapping[UUID, Head]
) -> ApplicationReport:
    report = ApplicationReport(app.name)
    seen: set[UUID] = set()
    try:
        with chained_store(app).chain_snapshot(stream_id) as snapshot:
            for stream, links in streams(snapshot.links):
                seen.add(stream)
                report.add(check_stream(stream, links, snapshot.chain_start, expected.get(stream)))
    except NoChainTableError as error:
        raise NoChainTableError(error.table, app.name) from None
    for stream in expected.keys() - seen:
        report.add(missing_stream(stream, expected[stream]))
    return report


def export_heads(heads: Heads, path: Path) -> int:
    """Write the heads to `path` (see the module's docstring); returns how many streams it holds."""
    document = {
        "format": HEADS_FORMAT,
        "exported_at": datetime.now(UTC).isoformat(),
        "applications": {
            name: {str(stream): {"version": version, "hash": digest.hex()}
                   for stream, (version, digest) in sorted(streams.items(), key=lambda item: str(item[0]))}
            for name, streams in heads.items()
        },
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    return sum(len(streams) for streams in heads.values())


def load_heads(path: Path) -> Heads:
    """The heads a file exported; HeadsFileError names what is wrong with it."""
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise HeadsFileError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise HeadsFileError(f"{path} is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != HEADS_FORMAT:
        raise HeadsFileError(f"{path} is not a heads file of `saga verify --export-heads` ({HEADS_FORMAT})")
    try:
        return {
            str(name): {UUID(stream): (int(head["version"]), bytes.fromhex(head["hash"]))
                        for stream, head in streams.items()}
            for name, streams in document["applications"].items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise HeadsFileError(f"{path} holds a head that is not a version and a hash: {error}") from None

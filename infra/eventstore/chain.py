"""The hash chain of every stream: each event's hash covers the hash of the one before it.

An event's hash is SHA-256 over five fields, each written as its length in bytes (8 bytes,
unsigned, big-endian) followed by the field's bytes, so that no two different tuples are
hashed from the same bytes:

  1. the previous event's hash in the stream (32 bytes), or GENESIS;
  2. the stream id: the UUID's 16 bytes;
  3. the version: 8 bytes, signed, big-endian;
  4. the topic: its UTF-8 bytes;
  5. the state: the bytes the recorder writes, after compression and encryption. Where a
     field is encrypted they are ciphertext, so deleting a key (forgetting a customer)
     changes no stored byte and breaks no chain.

GENESIS is 32 zero bytes. The first event of a stream chains from it, and so does the first
event of a stream that has a hash when the events before it have none: events stored before
chaining existed are "unchained", a prefix of their stream, never a break. Snapshots are not
chained: they are derived from the events.

Each event's hash is stored beside it, in the same transaction (`chain_tables`). Checking a
stream (`check_stream`) recomputes its chain from the stored events and names the first link
that does not hold.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from hashlib import sha256
from uuid import UUID

from eventsourcing.persistence import StoredEvent

GENESIS = bytes(32)
_LENGTH = struct.Struct(">Q")
_FIXED_ID, _FIXED_VERSION = _LENGTH.pack(16), _LENGTH.pack(8)


def link_hash(previous: bytes, stream_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """The hash of one event, chained to `previous` (the encoding is the module's docstring)."""
    topic_bytes = topic.encode()
    # A stored hash altered by hand may have any length: it is hashed as it is, and never matches.
    return sha256(b"".join((
        _LENGTH.pack(len(previous)), previous, _FIXED_ID, stream_id.bytes, _FIXED_VERSION,
        version.to_bytes(8, "big", signed=True),
        _LENGTH.pack(len(topic_bytes)), topic_bytes, _LENGTH.pack(len(state)), state,
    ))).digest()


def as_uuid(stream_id: UUID | str) -> UUID:
    return stream_id if isinstance(stream_id, UUID) else UUID(stream_id)


def needed(stored_events: Sequence[StoredEvent]) -> list[tuple[UUID, int]]:
    """The stored hashes a batch chains from: for each event whose predecessor is not in the batch."""
    in_batch = {(as_uuid(e.originator_id), e.originator_version) for e in stored_events}
    return sorted({
        (stream_id, e.originator_version - 1) for e in stored_events
        if e.originator_version > 1
        and ((stream_id := as_uuid(e.originator_id)), e.originator_version - 1) not in in_batch
    })


def chain(
    stored_events: Sequence[StoredEvent], stored: Mapping[tuple[UUID, int], bytes]
) -> list[tuple[UUID, int, bytes]]:
    """Each event's (stream id, version, hash), chained to the batch's earlier events or to `stored`.

    `stored` holds the hashes of `needed(stored_events)` that exist; a predecessor without
    one (an unchained event) or none at all means GENESIS.
    """
    made: dict[tuple[UUID, int], bytes] = {}
    for event in stored_events:
        stream_id, version = as_uuid(event.originator_id), event.originator_version
        key = (stream_id, version - 1)
        previous = made.get(key) or stored.get(key) or GENESIS
        made[(stream_id, version)] = link_hash(previous, stream_id, version, event.topic, event.state)
    return [(stream_id, version, digest) for (stream_id, version), digest in made.items()]


@dataclass(frozen=True, slots=True)
class Link:
    """One version of a stream as stored: its event (if any) and its hash (if any)."""

    stream_id: UUID
    version: int
    topic: str | None
    state: bytes | None
    notification_id: int | None
    hash: bytes | None

    @property
    def has_event(self) -> bool:
        return self.notification_id is not None


class Problem(StrEnum):
    """What differs at the first broken link."""

    HASH_MISMATCH = "hash mismatch"
    MISSING = "version missing"
    SWAPPED = "events swapped"
    EXTRA_HASH = "hash without an event"
    UNHASHED = "hash missing"
    REWRITTEN = "head differs from the export"


@dataclass(frozen=True)
class StreamReport:
    """Whether one stream's chain holds; if not, its first bad version and what differs there."""

    stream_id: UUID
    length: int
    """Events stored."""
    head_hash: bytes | None
    """The stored hash of the last event; None when no event of the stream is chained."""
    unchained: int = 0
    """Events stored before chaining existed: the first `unchained` versions."""
    broken_at: int | None = None
    problem: Problem | None = None
    detail: str = ""
    head_version: int = 0

    @property
    def verified(self) -> bool:
        return self.broken_at is None


Head = tuple[int, bytes]
"""An exported head: a version and the hash the stream had at it."""


def check_stream(
    stream_id: UUID, links: Sequence[Link], chain_start: int | None, head: Head | None = None
) -> StreamReport:
    """Recompute one stream's chain from its links (in version order) and report the first bad one.

    `chain_start` is the application's first notification id that has a hash: an event without
    a hash recorded after it is not unchained but stripped of its hash. `head`, from an export,
    must still be in the chain: that version with that hash.
    """
    checker = _Checker(stream_id, links, chain_start)
    report = checker.run()
    if report.verified and head is not None:
        return _against(report, checker.stored, head)
    return report


class _Checker:
    def __init__(self, stream_id: UUID, links: Sequence[Link], chain_start: int | None) -> None:
        self.stream_id, self.links, self.chain_start = stream_id, links, chain_start
        self.stored = {link.version: link.hash for link in links if link.hash is not None}
        self.events = sum(1 for link in links if link.has_event)

    def run(self) -> StreamReport:
        previous: bytes | None = None  # None until the chain begins
        unchained = 0
        for index, link in enumerate(self.links):
            if link.version != index + 1:
                return self.broken(index + 1, Problem.MISSING, f"no event at version {index + 1}", unchained)
            if not link.has_event:
                later = any(other.has_event for other in self.links[index + 1:])
                if later:
                    return self.broken(link.version, Problem.MISSING, "the event is gone, its hash is left",
                                       unchained)
                return self.broken(link.version, Problem.EXTRA_HASH, "a hash with no event", unchained)
            if link.topic is None or link.state is None:
                return self.broken(link.version, Problem.HASH_MISMATCH,
                                   "the stored event has no topic or state", unchained)
            if link.hash is None:
                if previous is not None or self._after_start(link):
                    return self.broken(link.version, Problem.UNHASHED,
                                       "an event recorded after chaining began has no hash", unchained)
                unchained += 1
                continue
            expected = link_hash(previous or GENESIS, self.stream_id, link.version, link.topic, link.state)
            if expected != link.hash:
                return self._mismatch(link, unchained)
            previous = link.hash
        last = self.links[-1] if self.links else None
        return StreamReport(self.stream_id, self.events, None if last is None else last.hash, unchained,
                            head_version=0 if last is None else last.version)

    def _after_start(self, link: Link) -> bool:
        return (self.chain_start is not None and link.notification_id is not None
                and link.notification_id > self.chain_start)

    def _mismatch(self, link: Link, unchained: int) -> StreamReport:
        assert link.topic is not None and link.state is not None
        for other in self.links:
            if other.version == link.version or other.hash is None:
                continue
            before = self.stored.get(other.version - 1, GENESIS)
            if link_hash(before, self.stream_id, other.version, link.topic, link.state) == other.hash:
                first, second = sorted((link.version, other.version))
                return self.broken(link.version, Problem.SWAPPED,
                                   f"the event stored at {link.version} was chained at {other.version} "
                                   f"(versions {first} and {second} swapped)", unchained)
        return self.broken(link.version, Problem.HASH_MISMATCH,
                           "the stored event does not hash to its stored hash", unchained)

    def broken(self, version: int, problem: Problem, detail: str, unchained: int) -> StreamReport:
        last = self.links[-1] if self.links else None
        return StreamReport(self.stream_id, self.events, None if last is None else last.hash, unchained,
                            broken_at=version, problem=problem, detail=detail,
                            head_version=0 if last is None else last.version)


def _against(report: StreamReport, stored: Mapping[int, bytes], head: Head) -> StreamReport:
    version, digest = head
    found = stored.get(version)
    if found == digest:
        return report
    detail = (f"the exported head {digest.hex()[:16]} at version {version} is gone" if found is None
              else f"version {version} now hashes {found.hex()[:16]}, exported {digest.hex()[:16]}")
    return StreamReport(report.stream_id, report.length, report.head_hash, report.unchained,
                        broken_at=version, problem=Problem.REWRITTEN, detail=detail,
                        head_version=report.head_version)


def missing_stream(stream_id: UUID, head: Head) -> StreamReport:
    """A stream of the export that the store no longer holds at all."""
    version, digest = head
    return StreamReport(stream_id, 0, None, broken_at=1, problem=Problem.REWRITTEN,
                        detail=f"the stream is gone; exported at version {version}, {digest.hex()[:16]}")


def streams(links: Iterable[Link]) -> Iterator[tuple[UUID, list[Link]]]:
    """Links in (stream, version) order, grouped by stream."""
    current: UUID | None = None
    group: list[Link] = []
    for link in links:
        if link.stream_id != current:
            if current is not None:
                yield current, group
            current, group = link.stream_id, []
        group.append(link)
    if current is not None:
        yield current, group

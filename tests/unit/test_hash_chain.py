"""The hash chain: how one event is hashed, how a batch chains, and what checking a stream finds."""

from __future__ import annotations

import dataclasses
from hashlib import sha256
from uuid import UUID, uuid4

from eventsourcing.persistence import StoredEvent

from infra.eventstore.chain import (
    GENESIS,
    Link,
    Problem,
    as_uuid,
    chain,
    check_stream,
    link_hash,
    missing_stream,
    needed,
)
from infra.eventstore.committed_heads import CommittedHeads
from infra.eventstore.recorders import MemoryExactlyOnceRecorder

TOPIC = "domain.order:Order.Placed"


def field(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def events(stream_id: UUID, count: int, first: int = 1) -> list[StoredEvent]:
    return [StoredEvent(stream_id, v, TOPIC, f'{{"n":{v}}}'.encode()) for v in range(first, first + count)]


def links_of(stored: list[StoredEvent], *, start: int = 1) -> list[Link]:
    """The links a store would hold for these events, chained from GENESIS, notification ids from `start`."""
    hashes = {v: h for _, v, h in chain(stored, {})}
    return [Link(as_uuid(e.originator_id), e.originator_version, e.topic, e.state, start + i,
                 hashes[e.originator_version]) for i, e in enumerate(stored)]


def test_an_event_is_hashed_over_its_length_prefixed_fields_as_the_module_says() -> None:
    stream_id = UUID("0b7e6a52-5d3c-4f0e-9a61-3c1f2e4d5b6a")
    expected = sha256(field(GENESIS) + field(stream_id.bytes) + field((3).to_bytes(8, "big"))
                      + field(TOPIC.encode()) + field(b"{}")).digest()
    assert link_hash(GENESIS, stream_id, 3, TOPIC, b"{}") == expected
    assert bytes(32) == GENESIS


def test_fields_that_concatenate_alike_hash_differently() -> None:
    stream_id = uuid4()
    assert link_hash(GENESIS, stream_id, 1, "ab", b"c") != link_hash(GENESIS, stream_id, 1, "a", b"bc")


def test_a_batch_chains_each_stream_to_its_stored_hash_and_to_its_own_earlier_events() -> None:
    old, new = uuid4(), uuid4()
    stored_head = link_hash(GENESIS, old, 1, TOPIC, b"{}")
    batch = [*events(old, 2, first=2), *events(new, 2)]
    assert needed(batch) == [(old, 1)]

    made = {(s, v): h for s, v, h in chain(batch, {(old, 1): stored_head})}

    assert made[(old, 2)] == link_hash(stored_head, old, 2, TOPIC, batch[0].state)
    assert made[(old, 3)] == link_hash(made[(old, 2)], old, 3, TOPIC, batch[1].state)
    assert made[(new, 1)] == link_hash(GENESIS, new, 1, TOPIC, batch[2].state)
    assert made[(new, 2)] == link_hash(made[(new, 1)], new, 2, TOPIC, batch[3].state)


def test_an_event_whose_predecessor_has_no_hash_chains_from_genesis() -> None:
    stream_id = uuid4()
    [(_, _, digest)] = chain(events(stream_id, 1, first=5), {})
    assert digest == link_hash(GENESIS, stream_id, 5, TOPIC, b'{"n":5}')


def test_an_untouched_stream_verifies_with_its_length_and_head() -> None:
    stream_id = uuid4()
    links = links_of(events(stream_id, 4))
    report = check_stream(stream_id, links, chain_start=1)
    assert report.verified and report.length == 4 and report.head_hash == links[-1].hash
    assert report.broken_at is None and report.unchained == 0


def test_one_changed_byte_is_a_hash_mismatch_at_its_version() -> None:
    stream_id = uuid4()
    links = links_of(events(stream_id, 4))
    links[2] = dataclasses.replace(links[2], state=b'{"n":9}')
    report = check_stream(stream_id, links, chain_start=1)
    assert (report.broken_at, report.problem) == (3, Problem.HASH_MISMATCH)


def test_a_deleted_event_is_a_missing_version_with_or_without_its_hash() -> None:
    stream_id = uuid4()
    links = links_of(events(stream_id, 4))
    without = [link for link in links if link.version != 2]
    hash_left = [dataclasses.replace(link, topic=None, state=None, notification_id=None) if link.version == 2
                 else link
                 for link in links]
    for stored in (without, hash_left):
        report = check_stream(stream_id, stored, chain_start=1)
        assert (report.broken_at, report.problem) == (2, Problem.MISSING)


def test_two_swapped_events_are_named_as_swapped() -> None:
    stream_id = uuid4()
    links = links_of(events(stream_id, 4))
    second, third = links[1], links[2]
    links[1] = dataclasses.replace(second, state=third.state)
    links[2] = dataclasses.replace(third, state=second.state)
    report = check_stream(stream_id, links, chain_start=1)
    assert (report.broken_at, report.problem) == (2, Problem.SWAPPED)
    assert "2 and 3" in report.detail


def test_a_hash_beyond_the_last_event_is_a_hash_without_an_event() -> None:
    stream_id = uuid4()
    links = links_of(events(stream_id, 3))
    links.append(Link(stream_id, 4, None, None, None, bytes(32)))
    report = check_stream(stream_id, links, chain_start=1)
    assert (report.broken_at, report.problem) == (4, Problem.EXTRA_HASH)


def test_events_stored_before_chaining_are_unchained_not_broken() -> None:
    stream_id = uuid4()
    old = [dataclasses.replace(link, hash=None) for link in links_of(events(stream_id, 2))]
    later = events(stream_id, 2, first=3)
    hashes = {v: h for _, v, h in chain(later, {})}  # the first hashed event chains from GENESIS
    new = [Link(stream_id, e.originator_version, e.topic, e.state, 10 + i, hashes[e.originator_version])
           for i, e in enumerate(later)]
    report = check_stream(stream_id, [*old, *new], chain_start=10)
    assert report.verified and report.unchained == 2 and report.length == 4


def test_an_event_stripped_of_its_hash_after_chaining_began_is_broken() -> None:
    stream_id = uuid4()
    links = links_of(events(stream_id, 3), start=5)
    stripped_head = [*links[:2], dataclasses.replace(links[2], hash=None)]
    stripped_all = [dataclasses.replace(link, hash=None) for link in links]

    report = check_stream(stream_id, stripped_head, chain_start=1)
    assert (report.broken_at, report.problem) == (3, Problem.UNHASHED)
    # Every hash of the stream gone, yet its events came after the application's first chained one.
    report = check_stream(stream_id, stripped_all, chain_start=1)
    assert (report.broken_at, report.problem) == (1, Problem.UNHASHED)


def test_a_history_rewritten_and_chained_again_no_longer_holds_the_exported_head() -> None:
    stream_id = uuid4()
    original = links_of(events(stream_id, 3))
    head = (3, original[-1].hash)
    assert head[1] is not None
    rewritten = links_of([StoredEvent(stream_id, v, TOPIC, b'{"forged":1}') for v in (1, 2, 3)])

    assert check_stream(stream_id, rewritten, chain_start=1).verified
    report = check_stream(stream_id, rewritten, chain_start=1, head=(head[0], head[1]))
    assert (report.broken_at, report.problem) == (3, Problem.REWRITTEN)
    assert check_stream(stream_id, original, chain_start=1, head=(head[0], head[1])).verified
    assert missing_stream(stream_id, (head[0], head[1])).broken_at == 1


def test_the_in_memory_store_chains_what_it_records_and_verifies_it() -> None:
    recorder = MemoryExactlyOnceRecorder()
    stream_id = uuid4()
    recorder.insert_events(events(stream_id, 2))
    recorder.insert_events(events(stream_id, 3, first=3))

    report = recorder.verify_stream(stream_id)
    assert report is not None and report.verified and report.length == 5
    assert recorder.verify_stream(uuid4()) is None
    recorder.hashes[(stream_id, 4)] = bytes(32)
    report = recorder.verify_stream(stream_id)
    assert report is not None and (report.broken_at, report.problem) == (4, Problem.HASH_MISMATCH)


def test_a_process_keeps_only_the_heads_it_committed_and_reads_the_others() -> None:
    heads = CommittedHeads()
    stream_id = uuid4()
    heads.hold([(stream_id, 1, b"a" * 32), (stream_id, 2, b"b" * 32)])
    heads.committed()
    heads.hold([(stream_id, 3, b"c" * 32)])
    heads.failed()  # its transaction rolled back: another writer may own version 3

    found, missing = heads.known([(stream_id, 2), (uuid4(), 4)])
    assert found == {(stream_id, 2): b"b" * 32} and len(missing) == 1
    assert heads.known([(stream_id, 3)]) == ({}, [(stream_id, 3)])
    assert heads.known([(stream_id, 1)]) == ({}, [(stream_id, 1)]), "only the head is kept"


def test_a_stored_hash_of_the_wrong_length_is_a_mismatch_not_a_crash() -> None:
    stream_id = uuid4()
    links = links_of(events(stream_id, 3))
    links[0] = dataclasses.replace(links[0], hash=b"x")
    report = check_stream(stream_id, links, chain_start=1)
    assert (report.broken_at, report.problem) == (1, Problem.HASH_MISMATCH)
    assert chain(events(stream_id, 1, first=2), {(stream_id, 1): b"x"})  # a save still goes on

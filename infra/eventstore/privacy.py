"""Personal data at rest: each customer's fields sealed with a key of their own, and forgotten by deleting it.

The fields an event class declares personal (`domain.privacy.PersonalData`) are stored sealed with a 256-bit
data key of the person the event names (the form of a sealed value: `infra.eventstore.sealed_values`).

The data keys live in a table of their own in each event store, apart from its event tables
(`infra.eventstore.key_tables`). A person's key is made for the first save that seals their data and inserted
by that save's transaction (`infra.eventstore.sealing`): if a rival kept a key for them first, the insert
fails, and the command decides again with the key kept. When a master key is configured (`DATA_KEY_SECRET`, or
a key file, `DATA_KEY_FILE`) each data key is stored wrapped by it (AES-GCM again), so a copy of the key table
alone gives nothing away either.

Forgetting a person deletes their key: from then on their sealed fields read as the erased form the event
class declares (`[erased]`), in every process. A key is at hand seals for as long as it stays at hand: the
save's transaction checks that it is still the one kept and fails if not, so nothing is sealed with a
forgotten key. A reader reads a key again once it has been at hand `KEY_CACHE_SECONDS`, so another process
shows a forgotten person's fields as erased within that time; the process that forgets, at once. A key made
here for a save not yet known to have committed opens what it sealed: readers hold only committed events.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.utils import resolve_topic

from domain.privacy import PersonalData, personal_data_of
from infra.eventstore.key_tables import KeyTable
from infra.eventstore.master_key import MasterKey, master_secret
from infra.eventstore.sealed_values import (
    ERASED_HERE,
    KEY_ID,
    SEALED_MARK,
    get_path,
    is_sealed,
    key_id_of,
    open_value,
    parent_of,
    seal_value,
    set_path,
)
from infra.eventstore.sealing import Seal
from infra.settings import Settings

KEY_CACHE_SECONDS = 5.0
KEYS_AT_HAND = 100_000  # beyond these, the keys least recently used are let go (read again if needed)


@dataclass(slots=True)
class _Entry:
    loaded_at: float
    aead: AESGCM | None
    stored: bytes | None
    key_id: str = ""
    new: bool = False


class PersonalDataKeys:
    """Seals and opens the personal fields of events with each person's own key; forgets a person.

    One per key table, shared by the applications whose stores share it. A person
    with no key at hand gets a new one, which the save's transaction inserts; if a
    rival kept a key first, the insert fails, the save with it, and the command
    decides again after reading the table. Where personal data enters (`prepare`
    with `asks_first` false) a new key is made without asking the table first: most
    persons seen there are new. Elsewhere the table is asked first. A key at hand seals
    however long it has been at hand; the save's transaction checks it is still the one
    kept, and if not, the save fails and the command decides again after reading the
    table. For opening, a key at hand longer than `cache_seconds` is read again.
    """

    def __init__(
        self, table: KeyTable, master: MasterKey, *, cache_seconds: float = KEY_CACHE_SECONDS
    ) -> None:
        self.table = table
        self.master = master
        self.cache_seconds = cache_seconds
        self.keys_at_hand = KEYS_AT_HAND
        self._cache: dict[UUID, _Entry] = {}
        self._doubtful: set[UUID] = set()  # a save with a new key of theirs failed: read before sealing
        self._lock = threading.Lock()

    # Sealing, for the mapper on the way in and the recorder in the save's transaction.

    def conceal(
        self, event_class: type[Any], stream_id: UUID, state: dict[str, Any], subject: UUID | None = None
    ) -> Seal | None:
        """Seal the event's personal fields in its stored JSON (changed in place); the key used, if any.

        `subject`, when the caller has it at hand, spares reading it from the JSON.
        """
        declared = personal_data_of(event_class)
        if declared is None:
            return None
        subject = subject or _subject(declared, state)
        if subject is None:
            return None
        entry: _Entry | None = None
        for path in declared.fields:
            parent, name = parent_of(state, path)
            value = None if parent is None else parent.get(name)
            if value is None or is_sealed(value):
                continue
            entry = entry or self._sealing_key(subject)
            assert parent is not None and entry.aead is not None
            parent[name] = seal_value(entry.aead, entry.key_id, value, stream_id, path)
        if entry is None or entry.stored is None:
            return None
        return Seal(subject, entry.stored, entry.new)

    def prepare(self, subjects: Iterable[UUID], *, asks_first: bool = True) -> None:
        """Have the keys of these persons at hand to seal with: one round trip for those to read, if any."""
        now = time.monotonic()
        to_read, to_make = [], []
        used = []
        for subject in set(subjects):
            entry = self._cache.get(subject)
            if self._ready_to_seal(entry):
                used.append(subject)
                continue
            if (entry is not None and self._fresh(entry, now)) or (
                    entry is None and not asks_first and subject not in self._doubtful):
                to_make.append(subject)  # none at hand (or forgotten a moment ago): a new one, unasked
            else:
                to_read.append(subject)
        if not to_read and not to_make:  # every key at hand already: most saves
            with self._lock:
                self._used(used)
            return
        kept = self.table.get_many(to_read) if to_read else {}
        entries = {s: self._new(now, s) for s in to_make}
        for subject in to_read:
            if subject in kept:
                entries[subject] = self._opened(now, subject, kept[subject])
            else:
                entries[subject] = self._new(now, subject)
        with self._lock:
            self._used(used)
            self._used(entries)
            self._cache.update(entries)
            self._let_go()
            self._doubtful.difference_update(to_read)

    def committed(self, seals: Sequence[Seal]) -> None:
        """The save is committed: its new keys are kept, and are no longer new."""
        with self._lock:
            for seal in seals:
                entry = self._cache.get(seal.subject)
                if seal.new and entry is not None and entry.new and entry.stored == seal.stored:
                    entry.new = False

    def failed(self, seals: Sequence[Seal]) -> None:
        """The save failed: a new key kept by a rival first, or a key at hand forgotten or replaced, or
        neither. Read these persons' keys before sealing again."""
        with self._lock:
            for seal in seals:
                self._cache.pop(seal.subject, None)
                self._doubtful.add(seal.subject)

    # Opening, for every reader of stored events.

    def reveal(self, topic: str, stream_id: UUID | str, state: dict[str, Any]) -> dict[str, Any]:
        """The stored JSON with the personal fields opened, or erased if their person was forgotten."""
        declared = _declared(topic)
        if declared is None:
            return state
        stream_id = stream_id if isinstance(stream_id, UUID) else UUID(stream_id)
        subject = _subject(declared, state)
        for path, erased in declared.fields.items():
            value = get_path(state, path)
            if not is_sealed(value):
                continue
            entry = None if subject is None else self._reading_key(subject, value.get(KEY_ID))
            opened = erased if entry is None else open_value(entry.aead, entry.key_id, value, stream_id, path)
            set_path(state, path, erased if opened is ERASED_HERE else opened)
        return state

    def load(self, subjects: Iterable[UUID]) -> None:
        """Have the keys of these persons at hand for reading, in one round trip; creates none."""
        now = time.monotonic()
        wanted = [s for s in set(subjects) if not self._fresh(self._cache.get(s), now)]
        if not wanted:
            return
        kept = self.table.get_many(wanted)
        with self._lock:
            self._used(wanted)
            for subject in wanted:
                if subject in kept:
                    self._cache[subject] = self._still(now, self._cache.get(subject), kept[subject]) \
                        or self._opened(now, subject, kept[subject])
                elif (entry := self._cache.get(subject)) is None or not entry.new:
                    self._cache[subject] = _Entry(now, None, None)
            self._let_go()

    def load_for(self, stored: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """`load` the persons whose sealed fields are among these stored states (topic, JSON)."""
        subjects = set()
        for topic, state in stored:
            declared = _declared(topic)
            if declared is not None and (subject := _subject(declared, state)) is not None:
                subjects.add(subject)
        self.load(subjects)

    def declares(self, topic: str) -> bool:
        """Whether events of this topic may carry sealed fields."""
        return _declared(topic) is not None

    def may_hold_sealed(self, data: bytes) -> bool:
        """Whether a stored event's JSON bytes may hold a sealed value: if not, reading it skips opening."""
        return SEALED_MARK in data

    def knows(self, subject: UUID) -> bool:
        """Whether the person has a key (has had personal data sealed and not been forgotten)."""
        return self._reading_key(subject) is not None

    def forget(self, subject: UUID) -> bool:
        """Delete the person's key, here and in the table; whether there was one."""
        deleted = self.table.delete(subject)
        with self._lock:
            self._cache[subject] = _Entry(time.monotonic(), None, None)
        return deleted

    @property
    def at_hand(self) -> int:
        return len(self._cache)

    def _used(self, subjects: Iterable[UUID]) -> None:  # under the lock: last to be let go
        for subject in subjects:
            if (entry := self._cache.pop(subject, None)) is not None:
                self._cache[subject] = entry

    def _let_go(self) -> None:  # under the lock: the least recently used go first
        for subject in list(itertools.islice(self._cache, max(0, len(self._cache) - self.keys_at_hand))):
            del self._cache[subject]

    def _sealing_key(self, subject: UUID) -> _Entry:
        entry = self._cache.get(subject)
        if not self._ready_to_seal(entry):
            self.prepare([subject])  # a save has its keys at hand already: this is for an event sealed alone
            entry = self._cache[subject]
        assert entry is not None
        return entry

    def _ready_to_seal(self, entry: _Entry | None) -> bool:  # of any age: the save checks it
        return entry is not None and entry.aead is not None

    def _reading_key(self, subject: UUID, key_id: str | None = None) -> _Entry | None:
        entry = self._cache.get(subject)
        if entry is not None and entry.new:  # see the module's docstring; else the key the table keeps
            if entry.aead is not None and key_id is not None and key_id == entry.key_id:
                return entry
            kept = self.table.get_many([subject]).get(subject)
            return None if kept is None else self._opened(time.monotonic(), subject, kept)
        if not self._fresh(entry, time.monotonic()):
            self.load([subject])
            entry = self._cache.get(subject)
        return None if entry is None or entry.new or entry.aead is None else entry

    def _fresh(self, entry: _Entry | None, now: float) -> bool:
        return entry is not None and (entry.new or now - entry.loaded_at < self.cache_seconds)

    def _still(self, now: float, entry: _Entry | None, stored: bytes) -> _Entry | None:
        """The entry at hand, fresh again, if the key read is the one it holds (spares unwrapping it)."""
        if entry is None or entry.aead is None or entry.new or entry.stored != stored:
            return None
        return _Entry(now, entry.aead, stored, entry.key_id)

    def _opened(self, now: float, subject: UUID, stored: bytes) -> _Entry:
        return _Entry(now, AESGCM(self.master.unwrap(subject, stored)), stored, key_id_of(stored))

    def _new(self, now: float, subject: UUID) -> _Entry:
        key = AESGCM.generate_key(bit_length=256)
        stored = self.master.wrap(subject, key)
        return _Entry(now, AESGCM(key), stored, key_id_of(stored), new=True)


def personal_data_keys(table: KeyTable, settings: Settings) -> PersonalDataKeys:
    """The keeper of a store's key table, with the master key the settings configure."""
    return PersonalDataKeys(table, MasterKey(master_secret(settings)), cache_seconds=KEY_CACHE_SECONDS)


@functools.lru_cache(maxsize=512)
def _declared(topic: str) -> PersonalData | None:
    try:
        return personal_data_of(resolve_topic(topic))
    except Exception:  # a topic of no class here (a snapshot of a foreign store): nothing to open
        return None


def _subject(declared: PersonalData, state: Mapping[str, Any]) -> UUID | None:
    value = get_path(state, declared.subject)
    return None if value is None else UUID(str(value))

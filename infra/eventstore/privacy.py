"""Personal data at rest: each customer's fields sealed with a key of their own, and forgotten by deleting it.

The fields an event class declares personal (`domain.privacy.PersonalData`) are
stored sealed: AES-GCM with a 256-bit data key of the person the event names,
a fresh 96-bit nonce each time, and the stream id and field path as associated
data, so a sealed value cannot be moved to another event unnoticed. In the
stored JSON a sealed field reads `{"sealed": "<base64 of nonce and ciphertext>"}`.

The data keys live in a table of their own, apart from the event tables
(`infra.eventstore.key_tables`), created on a person's first sealed field. When a master
key is configured (`DATA_KEY_SECRET`, or a key file, `DATA_KEY_FILE`) each data
key is stored wrapped by it (AES-GCM again), so a copy of the key table alone
gives nothing away either.

Forgetting a person deletes their key: from then on their sealed fields read as
the erased form the event class declares (`[erased]`), in every process. Keys
are cached for `KEY_CACHE_SECONDS`, so another process lets go of a forgotten
key within that time; the process that forgets lets go at once.
"""

from __future__ import annotations

import base64
import functools
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eventsourcing.utils import resolve_topic

from domain.privacy import PersonalData, personal_data_of
from infra.eventstore.key_tables import KeyTable, MemoryKeyTable, PostgresKeyTable, SQLiteKeyTable
from infra.settings import Settings

SEALED = "sealed"
KEY_CACHE_SECONDS = 5.0
NONCE_BYTES = 12


class MasterKey:
    """Wraps and unwraps data keys; without a configured secret, keys are kept as they are."""

    def __init__(self, secret: bytes | None) -> None:
        self._aead = None if secret is None else AESGCM(_derive(secret, b"saga data-key wrapping"))

    def wrap(self, subject: UUID, key: bytes) -> bytes:
        if self._aead is None:
            return key
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, key, subject.bytes)

    def unwrap(self, subject: UUID, stored: bytes) -> bytes:
        if self._aead is None:
            return stored
        return self._aead.decrypt(stored[:NONCE_BYTES], stored[NONCE_BYTES:], subject.bytes)


class PersonalDataKeys:
    """Seals and opens the personal fields of events with each person's own key; forgets a person."""

    def __init__(
        self, table: KeyTable, master: MasterKey, *, cache_seconds: float = KEY_CACHE_SECONDS
    ) -> None:
        self.table = table
        self.master = master
        self.cache_seconds = cache_seconds
        self._cache: dict[UUID, tuple[float, AESGCM | None]] = {}
        self._lock = threading.Lock()

    # Sealing, for the mapper on the way in.

    def conceal(self, event_class: type[Any], stream_id: UUID, state: dict[str, Any]) -> dict[str, Any]:
        """The stored JSON with the event's personal fields sealed (the dict is changed in place)."""
        declared = personal_data_of(event_class)
        if declared is None:
            return state
        subject = _subject(declared, state)
        if subject is None:
            return state
        for path in declared.fields:
            value = _get(state, path)
            if value is not None and not _is_sealed(value):
                aead = self._key(subject, create=True)
                assert aead is not None
                nonce = os.urandom(NONCE_BYTES)
                sealed = aead.encrypt(nonce, _json_bytes(value), _associated(stream_id, path))
                _set(state, path, {SEALED: base64.b64encode(nonce + sealed).decode()})
        return state

    # Opening, for every reader of stored events.

    def reveal(self, topic: str, stream_id: UUID | str, state: dict[str, Any]) -> dict[str, Any]:
        """The stored JSON with the personal fields opened, or erased if their person was forgotten."""
        declared = _declared(topic)
        if declared is None:
            return state
        stream_id = stream_id if isinstance(stream_id, UUID) else UUID(stream_id)
        subject = _subject(declared, state)
        for path, erased in declared.fields.items():
            value = _get(state, path)
            if not _is_sealed(value):
                continue
            aead = None if subject is None else self._key(subject, create=False)
            _set(state, path, _opened(aead, value, stream_id, path, erased))
        return state

    def forget(self, subject: UUID) -> bool:
        """Delete the person's key, here and in the table; whether there was one."""
        deleted = self.table.delete(subject)
        with self._lock:
            self._cache[subject] = (time.monotonic(), None)
        return deleted

    def prepare(self, subjects: Iterable[UUID]) -> None:
        """Have the keys of these persons at hand, creating the missing ones, in one round trip.

        A batch of events about many customers (a consumer's unit of work) then seals
        without asking the key table once per customer.
        """
        now = time.monotonic()
        wanted = {
            subject for subject in subjects
            if (cached := self._cache.get(subject)) is None or cached[1] is None
            or now - cached[0] >= self.cache_seconds
        }
        if not wanted:
            return
        kept = self.table.add_many({subject: self._new_key(subject) for subject in wanted})
        opened = {subject: AESGCM(self.master.unwrap(subject, stored)) for subject, stored in kept.items()}
        with self._lock:
            self._cache.update((subject, (now, aead)) for subject, aead in opened.items())

    def load(self, subjects: Iterable[UUID]) -> None:
        """Have the keys of these persons at hand for reading, in one round trip; creates none."""
        now = time.monotonic()
        wanted = [
            s for s in set(subjects) if (c := self._cache.get(s)) is None or now - c[0] >= self.cache_seconds
        ]
        if not wanted:
            return
        kept = self.table.get_many(wanted)
        opened = {s: AESGCM(self.master.unwrap(s, kept[s])) if s in kept else None for s in wanted}
        with self._lock:
            self._cache.update((subject, (now, aead)) for subject, aead in opened.items())

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

    def _new_key(self, subject: UUID) -> bytes:
        return self.master.wrap(subject, AESGCM.generate_key(bit_length=256))

    def close(self) -> None:
        self.table.close()

    def knows(self, subject: UUID) -> bool:
        """Whether the person has a key (has had personal data sealed and not been forgotten)."""
        return self._key(subject, create=False) is not None

    def _key(self, subject: UUID, *, create: bool) -> AESGCM | None:
        now = time.monotonic()
        cached = self._cache.get(subject)
        fresh = cached is not None and now - cached[0] < self.cache_seconds
        if cached is not None and fresh and (cached[1] is not None or not create):
            return cached[1]
        if create:  # sealing: the key kept, or a new one (one round trip either way)
            stored: bytes | None = self.table.add_many({subject: self._new_key(subject)})[subject]
        else:
            stored = self.table.get(subject)
        aead = None if stored is None else AESGCM(self.master.unwrap(subject, stored))
        with self._lock:
            self._cache[subject] = (now, aead)
        return aead


def personal_data_keys(settings: Settings) -> PersonalDataKeys:
    """The key table the settings choose, with the master key they configure."""
    table: KeyTable
    where = settings.postgres
    if where is not None:
        table = PostgresKeyTable(where, create=settings.create_table)
    elif settings.is_in_memory:
        table = MemoryKeyTable()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        table = SQLiteKeyTable(settings.data_dir / "keys.sqlite")
    return PersonalDataKeys(table, MasterKey(master_secret(settings)))


def master_secret(settings: Settings) -> bytes | None:
    """The configured master secret: `DATA_KEY_SECRET`, or what `DATA_KEY_FILE` holds; None if neither."""
    if settings.data_key_secret:
        return settings.data_key_secret.encode()
    if settings.data_key_file is not None:
        return settings.data_key_file.read_bytes().strip()
    return None


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


@functools.lru_cache(maxsize=512)
def _declared(topic: str) -> PersonalData | None:
    try:
        return personal_data_of(resolve_topic(topic))
    except Exception:  # a topic of no class here (a snapshot of a foreign store): nothing to open
        return None


def _subject(declared: PersonalData, state: Mapping[str, Any]) -> UUID | None:
    value = _get(state, declared.subject)
    return None if value is None else UUID(str(value))


def _opened(aead: AESGCM | None, value: Mapping[str, Any], stream_id: UUID, path: str, erased: Any) -> Any:
    if aead is None:
        return erased
    blob = base64.b64decode(value[SEALED])
    try:
        opened = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _associated(stream_id, path))
    except InvalidTag:
        raise ValueError(f"the sealed {path} of stream {stream_id} does not open with its key") from None
    return _from_json_bytes(opened)


def _associated(stream_id: UUID, path: str) -> bytes:
    return stream_id.bytes + path.encode()


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and SEALED in value and len(value) == 1


def _get(state: Mapping[str, Any], path: str) -> Any:
    value: Any = state
    for name in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _set(state: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target = state
    for name in parents:
        target = target[name]
    target[last] = value


def _json_bytes(value: Any) -> bytes:
    return orjson.dumps(value)


def _from_json_bytes(data: bytes) -> Any:
    return orjson.loads(data)

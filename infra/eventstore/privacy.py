"""Personal data at rest: each customer's fields sealed with a key of their own, and forgotten by deleting it.

The fields an event class declares personal (`domain.privacy.PersonalData`) are
stored sealed: AES-GCM with a 256-bit data key of the person the event names,
a fresh 96-bit nonce each time, and the stream id and field path as associated
data, so a sealed value cannot be moved to another event unnoticed. In the
stored JSON a sealed field reads `{"sealed": "<base64 of nonce and ciphertext>"}`.

The data keys live in a table of their own, apart from the event tables
(`personal_data_keys`, in the event store's database, or `keys.sqlite` beside
the embedded stores), created on a person's first sealed field. When a master
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
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import orjson
import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eventsourcing.utils import resolve_topic
from psycopg import sql
from psycopg_pool import ConnectionPool

from domain.privacy import PersonalData, personal_data_of
from infra.eventstore.ddl import SERIALISE_DDL
from infra.settings import PostgresDsn, Settings

SEALED = "sealed"
KEY_CACHE_SECONDS = 5.0
NONCE_BYTES = 12


class KeyTable(Protocol):
    """Where the data keys are kept, as stored (wrapped when there is a master key)."""

    def get(self, subject: UUID) -> bytes | None: ...

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        """The keys kept for these subjects (those with none are left out), in one round trip."""
        ...

    def add_many(self, new: Mapping[UUID, bytes]) -> dict[UUID, bytes]:
        """Keep each subject's new key unless one is kept already, all at once; the keys kept, by subject."""
        ...

    def delete(self, subject: UUID) -> bool:
        """Delete the subject's key; whether there was one."""
        ...

    def close(self) -> None: ...


class MemoryKeyTable:
    """The keys of an in-memory store (`DATABASE_URL=memory://`)."""

    def __init__(self) -> None:
        self._keys: dict[UUID, bytes] = {}
        self._lock = threading.Lock()

    def get(self, subject: UUID) -> bytes | None:
        return self._keys.get(subject)

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        return {subject: self._keys[subject] for subject in subjects if subject in self._keys}

    def add_many(self, new: Mapping[UUID, bytes]) -> dict[UUID, bytes]:
        with self._lock:
            return {subject: self._keys.setdefault(subject, stored) for subject, stored in new.items()}

    def delete(self, subject: UUID) -> bool:
        with self._lock:
            return self._keys.pop(subject, None) is not None

    def close(self) -> None:
        pass


class SQLiteKeyTable:
    """The keys of the embedded default, in `keys.sqlite` beside the event stores (one connection, locked)."""

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS personal_data_keys ("
                " subject TEXT PRIMARY KEY, stored BLOB NOT NULL,"
                " created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )

    def get(self, subject: UUID) -> bytes | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT stored FROM personal_data_keys WHERE subject = ?", (str(subject),)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        with self._lock:
            return self._select(subjects)

    def add_many(self, new: Mapping[UUID, bytes]) -> dict[UUID, bytes]:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                self._connection.executemany(
                    "INSERT OR IGNORE INTO personal_data_keys (subject, stored) VALUES (?, ?)",
                    [(str(subject), stored) for subject, stored in new.items()],
                )
                kept = self._select(list(new))
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
        return kept

    def _select(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        kept: dict[UUID, bytes] = {}
        for start in range(0, len(subjects), 500):
            chunk = [str(subject) for subject in subjects[start : start + 500]]
            marks = ", ".join("?" * len(chunk))
            rows = self._connection.execute(
                f"SELECT subject, stored FROM personal_data_keys WHERE subject IN ({marks})", chunk,
            ).fetchall()
            kept.update((UUID(subject), bytes(stored)) for subject, stored in rows)
        return kept

    def delete(self, subject: UUID) -> bool:
        with self._lock:
            deleted = self._connection.execute(
                "DELETE FROM personal_data_keys WHERE subject = ?", (str(subject),)
            ).rowcount
        return bool(deleted)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class PostgresKeyTable:
    """The keys on PostgreSQL: a table of the event store's database and schema, apart from its events."""

    def __init__(self, where: PostgresDsn, *, create: bool = True, max_connections: int = 2) -> None:
        name = sql.Identifier("personal_data_keys")
        schema = where.schema_name
        self._table = sql.SQL(".").join([sql.Identifier(schema), name]) if schema else name
        # Keys are cached, so a process asks for one now and then: a connection or two serve all its threads.
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            where.url, min_size=1, max_size=max_connections, open=True, name="personal data keys",
            kwargs={"autocommit": True, "connect_timeout": 10, "application_name": "saga personal data keys"},
            check=ConnectionPool.check_connection,
        )
        if create:
            with self._pool.connection() as connection, connection.transaction():
                connection.execute(SERIALISE_DDL)  # processes starting together create it one at a time
                connection.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (subject uuid PRIMARY KEY, stored bytea NOT NULL,"
                    " created_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._table))

    def close(self) -> None:
        self._pool.close()

    def _execute(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        # The pool checks each connection as it lends it, so a session the server ended is replaced.
        with self._pool.connection() as connection:
            cursor = connection.execute(sql.SQL(query).format(table=self._table), params)
            return cursor.fetchall() if cursor.description else [(cursor.rowcount,)]

    def get(self, subject: UUID) -> bytes | None:
        rows = self._execute("SELECT stored FROM {table} WHERE subject = %s", (subject,))
        return bytes(rows[0][0]) if rows else None

    def get_many(self, subjects: Sequence[UUID]) -> dict[UUID, bytes]:
        rows = self._execute("SELECT subject, stored FROM {table} WHERE subject = ANY(%s::uuid[])",
                             (list(subjects),))
        return {subject: bytes(stored) for subject, stored in rows}

    def add_many(self, new: Mapping[UUID, bytes]) -> dict[UUID, bytes]:
        # One round trip: the rows this inserts, and those rivals inserted first.
        subjects, keys = list(new), list(new.values())
        rows = self._execute(
            "WITH added AS (INSERT INTO {table} (subject, stored)"
            " SELECT * FROM unnest(%s::uuid[], %s::bytea[]) ON CONFLICT (subject) DO NOTHING"
            " RETURNING subject, stored)"
            " SELECT subject, stored FROM added UNION ALL"
            " SELECT subject, stored FROM {table} WHERE subject = ANY(%s::uuid[])",
            (subjects, keys, subjects),
        )
        return {subject: bytes(stored) for subject, stored in rows}

    def delete(self, subject: UUID) -> bool:
        [(deleted,)] = self._execute("DELETE FROM {table} WHERE subject = %s", (subject,))
        return bool(deleted)


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

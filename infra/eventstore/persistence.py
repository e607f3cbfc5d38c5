"""How events are stored: a pydantic-aware mapper, an orjson transcoder, and the
environment that points each eventsourcing application at SQLite or PostgreSQL."""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel

from commands.following import stored_state as decode_state
from domain.privacy import personal_data_of, subject_of
from infra.eventstore.privacy import PersonalDataKeys
from infra.eventstore.recorders import MemoryFactory, PostgresExactlyOnceFactory
from infra.eventstore.sealing import SealedStoredEvent
from infra.eventstore.sqlite_store import SQLiteExactlyOnceFactory
from infra.settings import PostgresDsn, Settings

STREAM_FIELDS = {"originator_id", "originator_version"}  # the stored event's columns, not its JSON


class OrjsonTranscoder(Transcoder):
    """JSON bytes via orjson; the mapper has already reduced events to JSON types."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper[UUID]):
    """Stores pydantic events as their JSON form and validates them on the way back.

    `class_version` and `upcast_vN_vN+1` static methods on an event class upcast
    older stored states, as the library's own mapper does for dataclass events.
    With `personal` (set by the composition root), the fields an event declares
    personal are sealed with their person's key on the way in, and opened, or
    read as erased, by every reader on the way out (`commands.following.stored_state`).
    """

    personal: PersonalDataKeys | None = None

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        assert isinstance(domain_event, BaseModel)
        event_class = type(domain_event)
        class_version = class_version_of(event_class)
        seal = None
        if class_version == 1 and isinstance(self.transcoder, OrjsonTranscoder) and (
                self.personal is None or personal_data_of(event_class) is None):
            # Nothing to add to the fields or seal in them: pydantic writes the JSON the dict
            # below would make, byte for byte, in under half the time.
            data = event_class.__pydantic_serializer__.to_json(domain_event, exclude=STREAM_FIELDS)
        else:
            state = domain_event.model_dump(mode="json", exclude=STREAM_FIELDS)
            if class_version > 1:
                state["class_version"] = class_version
            if self.personal is not None:
                seal = self.personal.conceal(event_class, domain_event.originator_id, state,  # type: ignore[attr-defined]
                                             subject_of(domain_event))
            data = self.transcoder.encode(state)
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        originator_id = domain_event.originator_id  # type: ignore[attr-defined]
        version = domain_event.originator_version  # type: ignore[attr-defined]
        topic = get_topic(type(domain_event))
        if seal is not None:  # the save's transaction keeps the key, or checks it is the one kept
            return SealedStoredEvent(originator_id, version, topic, data, seal)
        return StoredEvent(originator_id=originator_id, originator_version=version, topic=topic, state=data)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return decode_event(self, stored_event)


def decode_event(mapper: Mapper[UUID], stored_event: StoredEvent) -> Any:
    cls = resolve_topic(stored_event.topic)
    state = decode_state(mapper, stored_event)
    version = state.pop("class_version", 1)
    while version < class_version_of(cls):
        getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    return cls(
        originator_id=stored_event.originator_id,
        originator_version=stored_event.originator_version,
        **state,
    )


@functools.cache
def class_version_of(event_class: type[Any]) -> int:
    """The class's `class_version`, 1 if it declares none: asked once a class, as every event is mapped.

    A pydantic model class answers an attribute it lacks by raising from its metaclass's
    `__getattr__`, a few microseconds an event.
    """
    version: int = getattr(event_class, "class_version", 1)
    return version


def application_env(settings: Settings, app_name: str) -> dict[str, str]:
    """The eventsourcing environment for one application, chosen by settings alone."""
    env = {
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        # Messages may arrive out of order (retry queues reorder them), so every
        # processed message keeps its own tracking row.
        "SINGLE_ROW_TRACKING": "n",
        "CREATE_TABLE": "y" if settings.create_table else "n",
        # Hot aggregates (a product's Stock, a running saga) are loaded again and again;
        # the cache keeps them and reads only the events recorded since (fast-forward).
        # Never without the fast-forward: with several copies of a worker, a decision
        # on a stale copy that writes nothing (a Stock that does not know the other
        # copy's reservation, so has nothing to sell) would never collide.
        "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size),
        "AGGREGATE_CACHE_FASTFORWARD": "y",
    }
    dsn = settings.database_of(app_name)  # its context's own database, or DATABASE_URL's
    if dsn is not None:
        env.update(postgres_env(dsn, settings))
    elif settings.is_in_memory:
        env["PERSISTENCE_MODULE"] = get_topic(MemoryFactory)
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        env["PERSISTENCE_MODULE"] = get_topic(SQLiteExactlyOnceFactory)
        env["SQLITE_DBNAME"] = str(settings.data_dir / f"{app_name.lower()}.sqlite")
        env["SQLITE_LOCK_TIMEOUT"] = "30"
    return env


def postgres_env(dsn: PostgresDsn, settings: Settings) -> dict[str, str]:
    env = {
        "PERSISTENCE_MODULE": get_topic(PostgresExactlyOnceFactory),
        "POSTGRES_HOST": dsn.host,
        "POSTGRES_PORT": str(dsn.port),
        "POSTGRES_DBNAME": dsn.dbname,
        "POSTGRES_USER": dsn.user,
        "POSTGRES_PASSWORD": dsn.password,
        "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.postgres_max_overflow),
        "POSTGRES_LOCK_TIMEOUT": str(settings.postgres_lock_timeout),
        "POSTGRES_CONNECT_TIMEOUT": "30",
        # No "SELECT 1" before every use of a pooled connection: a connection the
        # server dropped fails its statement instead, the message is retried, and the
        # pool replaces the connection.
        "POSTGRES_PRE_PING": "n",
    }
    if dsn.schema_name:
        env["POSTGRES_SCHEMA"] = dsn.schema_name
    return env

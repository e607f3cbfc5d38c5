"""One sealed value in an event's stored JSON: its form, how it is sealed and opened.

`{"sealed": "<base64 of nonce and ciphertext>", "key": "<key id>"}`: AES-GCM with the
person's data key, a fresh 96-bit nonce, and the stream id and field path as associated
data, so a sealed value cannot be moved to another event unnoticed. The key id (16 hex
digits of SHA-256 of the key as stored) says which of the person's keys sealed it: a key
made after a forgetting opens nothing sealed before it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from infra.eventstore.master_key import NONCE_BYTES

SEALED = "sealed"
KEY_ID = "key"
SEALED_MARK = b'"sealed"'  # in the JSON bytes of every event that holds a sealed value
ERASED_HERE = object()
"""What `open_value` returns when the key that sealed the value is gone."""


def seal_value(aead: AESGCM, key_id: str, value: Any, stream_id: UUID, path: str) -> dict[str, str]:
    nonce = os.urandom(NONCE_BYTES)
    sealed = aead.encrypt(nonce, orjson.dumps(value), _associated(stream_id, path))
    return {SEALED: binascii.b2a_base64(nonce + sealed, newline=False).decode(), KEY_ID: key_id}


def open_value(aead: AESGCM | None, key_id: str, value: Mapping[str, Any], stream_id: UUID, path: str) -> Any:
    """The value opened; `ERASED_HERE` if its key was deleted; ValueError if it does not open with its key."""
    if aead is None or value.get(KEY_ID, key_id) != key_id:
        return ERASED_HERE
    blob = base64.b64decode(value[SEALED])
    try:
        opened = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _associated(stream_id, path))
    except InvalidTag:
        raise ValueError(f"the sealed {path} of stream {stream_id} does not open with its key") from None
    return orjson.loads(opened)


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and SEALED in value and value.keys() <= {SEALED, KEY_ID}


def key_id_of(stored: bytes) -> str:
    return hashlib.sha256(stored).hexdigest()[:16]


def _associated(stream_id: UUID, path: str) -> bytes:
    return stream_id.bytes + _parsed(path)[2]


@functools.lru_cache(maxsize=1024)
def _parsed(path: str) -> tuple[tuple[str, ...], str, bytes]:
    """A dotted path as its parents' names, its last name, and its bytes (asked of every event)."""
    *parents, last = path.split(".")
    return tuple(parents), last, path.encode()


def parent_of(state: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """The mapping that holds the path's last name (None if the state has none), and that name."""
    parents, last, _ = _parsed(path)
    parent: Any = state
    for name in parents:
        parent = parent.get(name) if isinstance(parent, dict) else None
    return (parent if isinstance(parent, dict) else None), last


def get_path(state: Mapping[str, Any], path: str) -> Any:
    parents, last, _ = _parsed(path)
    value: Any = state
    for name in parents:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value.get(last) if isinstance(value, Mapping) else None


def set_path(state: dict[str, Any], path: str, value: Any) -> None:
    parents, last, _ = _parsed(path)
    target = state
    for name in parents:
        target = target[name]
    target[last] = value

"""The operator's master key, which wraps every customer's data key when one is configured.

`DATA_KEY_SECRET`, or the file `DATA_KEY_FILE` names; HKDF-SHA256 derives the wrapping
key from it, and each data key is stored as AES-GCM of it, bound to its person's id.
Without either, data keys are stored as they are.
"""

from __future__ import annotations

import os
from uuid import UUID

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from infra.settings import Settings

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


def master_secret(settings: Settings) -> bytes | None:
    """The configured master secret: `DATA_KEY_SECRET`, or what `DATA_KEY_FILE` holds; None if neither."""
    if settings.data_key_secret:
        return settings.data_key_secret.encode()
    if settings.data_key_file is not None:
        return settings.data_key_file.read_bytes().strip()
    return None


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)

"""The master key ring (KEK). The first key encrypts; the others only unwrap during a KEK rotation.

HEALTHMAIL_MASTER_KEY="id2:<base64 32 bytes>,id1:<base64>" or HEALTHMAIL_MASTER_KEY_FILE with the same
text. A bare base64 key gets the id "k1". Production refuses to start without one (settings).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class MasterKeyRing:
    def __init__(self, keys: list[tuple[str, bytes]]):
        if not keys:
            raise ImproperlyConfigured("No master key configured (HEALTHMAIL_MASTER_KEY or _FILE).")
        self.current_id = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}
        self._keys = dict(keys)

    def cipher(self, key_id: str) -> AESGCM:
        try:
            return self._ciphers[key_id]
        except KeyError:
            raise ImproperlyConfigured(f"Master key {key_id!r} is not in the key ring.") from None

    def derive(self, purpose: str, key_id: str | None = None) -> bytes:
        """A 32-byte secret for another purpose (e.g. signing audit checkpoints), bound to one master key."""
        key_id = key_id or self.current_id
        if key_id not in self._keys:
            raise ImproperlyConfigured(f"Master key {key_id!r} is not in the key ring.")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            self._keys[key_id]
        )

    @property
    def ids(self) -> list[str]:
        return list(self._ciphers)


def parse_key_ring(text: str) -> list[tuple[str, bytes]]:
    keys = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key_id, _, encoded = part.rpartition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured("A master key is not valid base64.") from None
        if len(key) != 32:
            raise ImproperlyConfigured("A master key must be 32 bytes (AES-256).")
        keys.append((key_id or "k1", key))
    return keys


def generate_key_file(path: Path) -> None:
    """Dev only: a new random master key, readable by the owner alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("k1:" + base64.b64encode(secrets.token_bytes(32)).decode() + "\n")


@functools.cache
def key_ring() -> MasterKeyRing:
    text = settings.HEALTHMAIL_MASTER_KEY
    if not text and settings.HEALTHMAIL_MASTER_KEY_FILE:
        text = Path(settings.HEALTHMAIL_MASTER_KEY_FILE).read_text()
    return MasterKeyRing(parse_key_ring(text))

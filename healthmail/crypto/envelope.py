"""AES-256-GCM under the tenant's data key. Every ciphertext names its key version and is bound to
its place by associated data, so a copy in another row, column or tenant fails to decrypt.

Layout: b"\\x01" | key version (4 bytes, big-endian) | nonce (12) | ciphertext + tag (16)
"""

from __future__ import annotations

import secrets
import struct
import uuid
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import keys, usage
from .errors import DecryptionError

FORMAT = 1
_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size + 12
DATA = "data"


def seal(cipher: AESGCM, version: int, plaintext: bytes, aad: bytes) -> bytes:
    # Random 96-bit nonces: a collision stays below 2^-48 until a key has sealed 2^24 values;
    # rotate data keys well before that (rotate_keys).
    nonce = secrets.token_bytes(12)
    return _HEADER.pack(FORMAT, version) + nonce + cipher.encrypt(nonce, plaintext, aad)


def open_sealed(cipher_for_version: Callable[[int], AESGCM], blob: bytes, aad: bytes) -> bytes:
    if len(blob) < HEADER_SIZE + 16:
        raise DecryptionError("Ciphertext is truncated.")
    fmt, version = _HEADER.unpack_from(blob)
    if fmt != FORMAT:
        raise DecryptionError(f"Unknown ciphertext format {fmt}.")
    cipher = cipher_for_version(version)
    try:
        plaintext: bytes = cipher.decrypt(blob[_HEADER.size : HEADER_SIZE], blob[HEADER_SIZE:], aad)
    except InvalidTag:
        raise DecryptionError("Ciphertext failed authentication (tampered, moved, or wrong key).") from None
    return plaintext


def key_version_of(blob: bytes) -> int:
    version: int = _HEADER.unpack_from(blob)[1]
    return version


def _current_cipher(tenant_id: uuid.UUID) -> tuple[int, AESGCM]:
    version = keys.current_version(tenant_id, DATA)
    try:
        return version, keys.cipher(tenant_id, DATA, version)
    except DecryptionError:
        # The cached current version was created in a transaction that rolled back.
        keys.forget_current(tenant_id)
        version = keys.current_version(tenant_id, DATA)
        return version, keys.cipher(tenant_id, DATA, version)


def encrypt(tenant_id: uuid.UUID, plaintext: bytes, aad: bytes) -> bytes:
    version, cipher = _current_cipher(tenant_id)
    usage.count(tenant_id, version)
    return seal(cipher, version, plaintext, aad)


def encrypt_many(tenant_id: uuid.UUID, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
    """`encrypt` for a batch of (plaintext, aad): the same layout and nonce rule, but the key is
    looked up once and the random nonces come from one read of the OS source instead of one each."""
    if not items:
        return []
    version, cipher = _current_cipher(tenant_id)
    usage.count(tenant_id, version, len(items))
    header = _HEADER.pack(FORMAT, version)
    nonces = secrets.token_bytes(12 * len(items))
    sealed = []
    for start, (plaintext, aad) in zip(range(0, len(nonces), 12), items, strict=True):
        nonce = nonces[start : start + 12]
        sealed.append(header + nonce + cipher.encrypt(nonce, plaintext, aad))
    return sealed


def decrypt(tenant_id: uuid.UUID, blob: bytes, aad: bytes) -> bytes:
    return open_sealed(lambda version: keys.cipher(tenant_id, DATA, version), blob, aad)

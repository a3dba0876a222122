"""Keys that must be destroyable, kept outside the database and its backups.

A key deleted from a database table survives in every earlier backup of that table. Keys whose
destruction must hold against backups (the epoch keys of objects.py) therefore live in a key store
of their own: here a directory of files (`HEALTHMAIL_KEYSTORE_DIR`, one file per key, mode 0600),
to be kept off the database host and out of its backups. Another implementation (a KMS or an HSM,
or later a tenant's own KMS) only has to offer the same three calls.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import uuid
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .errors import DecryptionError

KEY_BYTES = 32


class KeyStore(Protocol):
    def key_create(self, *, tenant_id: uuid.UUID, key_id: uuid.UUID) -> bytes: ...

    def key_load(self, *, tenant_id: uuid.UUID, key_id: uuid.UUID) -> bytes: ...

    def key_destroy(self, *, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None: ...


class LocalKeyStore:
    """One file per key under `directory/<tenant id>/`, written once, readable by the owner alone."""

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, tenant_id: uuid.UUID, key_id: uuid.UUID) -> Path:
        # Both parts are UUIDs (never user input); checked anyway, so no path can escape the store.
        name = f"{uuid.UUID(str(tenant_id))}/{uuid.UUID(str(key_id))}.key"
        if not re.fullmatch(r"[0-9a-f-]{36}/[0-9a-f-]{36}\.key", name):
            raise ValueError("Key names are UUIDs.")
        return self.directory / name

    def key_create(self, *, tenant_id: uuid.UUID, key_id: uuid.UUID) -> bytes:
        path = self._path(tenant_id, key_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(KEY_BYTES)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        return key

    def key_load(self, *, tenant_id: uuid.UUID, key_id: uuid.UUID) -> bytes:
        try:
            key = self._path(tenant_id, key_id).read_bytes()
        except FileNotFoundError:
            raise DecryptionError("The key was destroyed; what it protected is unrecoverable.") from None
        if len(key) != KEY_BYTES:
            raise DecryptionError("A key in the key store is damaged.")
        return key

    def key_destroy(self, *, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
        """Overwrite, then unlink (idempotent). On copy-on-write or journaling storage the overwrite
        is best effort: the store belongs on storage whose deleted blocks are not kept."""
        path = self._path(tenant_id, key_id)
        try:
            with path.open("r+b") as handle:
                handle.write(secrets.token_bytes(KEY_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
            path.unlink()
        except FileNotFoundError:
            return


def key_store() -> KeyStore:
    """The key store the settings name now: read at every call, so a changed setting (a test's
    private key store) can never leave a process holding a store another process does not see."""
    directory = getattr(settings, "HEALTHMAIL_KEYSTORE_DIR", "")
    if not directory:
        raise ImproperlyConfigured("HEALTHMAIL_KEYSTORE_DIR is not set (the key store for destroyable keys).")
    return _store(directory)


@functools.cache
def _store(directory: str) -> KeyStore:
    return LocalKeyStore(Path(directory))

"""Epoch keys and the object keys they wrap: the primitives shared by per-object content keys
(objects.py) and per-row keys (rowkeys.py).

An object key row holds a 256-bit key sealed by the tenant's current epoch key (in the key store,
outside the database and its backups); objects.epochs_rotate() moves every live object key to a new
epoch and destroys the older epoch keys.
"""

from __future__ import annotations

import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import IntegrityError, connection, transaction

from . import envelope
from .errors import DecryptionError
from .keystore import key_store
from .models import EpochKey


def key_aad(tenant_id: object, object_key_id: object) -> bytes:
    return f"object-key|{tenant_id}|{object_key_id}".encode()


def tenant_uuid(tenant: object) -> uuid.UUID:
    return uuid.UUID(str(getattr(tenant, "pk", tenant)))


def epoch_lock(tenant_id: uuid.UUID, *, exclusive: bool) -> None:
    # Creators hold it shared until their transaction ends; a rotation takes it exclusively to switch
    # epochs, so no object key can still be committed under an epoch being retired.
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(hashtext(%s))", [f"epoch-key:{tenant_id}"])


def epoch_new(tenant_id: uuid.UUID) -> EpochKey:
    epoch = EpochKey(tenant_id=tenant_id)
    key_store().key_create(tenant_id=tenant_id, key_id=epoch.pk)
    epoch.save()
    return epoch


def epoch_current(tenant_id: uuid.UUID) -> EpochKey:
    found = EpochKey.objects.filter(tenant_id=tenant_id, retired_at__isnull=True).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return epoch_new(tenant_id)
    except IntegrityError:  # another creator started the tenant's first epoch at the same moment
        return EpochKey.objects.get(tenant_id=tenant_id, retired_at__isnull=True)


def epoch_key(tenant_id: uuid.UUID, epoch_id: object) -> bytes:
    return key_store().key_load(tenant_id=tenant_id, key_id=uuid.UUID(str(epoch_id)))


def wrap_with(epoch_bytes: bytes, key: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(epoch_bytes).encrypt(nonce, key, aad)


def wrap(epoch_id: uuid.UUID, tenant_id: uuid.UUID, key: bytes, aad: bytes) -> bytes:
    return wrap_with(epoch_key(tenant_id, epoch_id), key, aad)


def unwrap_with(epoch_bytes: bytes, wrapped: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(epoch_bytes).decrypt(wrapped[:12], wrapped[12:], aad)
    except InvalidTag:
        raise DecryptionError("An object key failed authentication (tampered or moved).") from None


def object_key_unwrap(
    *, tenant_id: uuid.UUID, object_key_id: object, epoch_id: object, wrapped: bytes
) -> bytes:
    """The key held by one object key row (as stored, or as restored from a backup)."""
    aad = key_aad(tenant_id, object_key_id)
    if epoch_id is None:  # made before epochs: wrapped by the tenant's data key
        return envelope.decrypt(tenant_id, wrapped, aad)
    return unwrap_with(epoch_key(tenant_id, epoch_id), wrapped, aad)

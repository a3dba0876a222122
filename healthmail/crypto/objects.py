"""Per-object keys for content that retention must be able to destroy (message bodies, portal
messages). The content is sealed with its own key; the key is sealed with the tenant's data key.
`shred()` deletes the key row: the ciphertext may linger in backups, but nothing can open it.
"""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from audit import services as audit
from audit.actors import Actor
from healthmail.tenants.context import tenant_context

from . import envelope
from .errors import DecryptionError
from .models import ObjectKey


def _key_aad(tenant_id, object_key_id) -> bytes:
    return f"object-key|{tenant_id}|{object_key_id}".encode()


def object_key_create(*, tenant) -> ObjectKey:
    tenant_id = uuid.UUID(str(getattr(tenant, "pk", tenant)))
    object_key = ObjectKey(tenant_id=tenant_id)
    sealed = envelope.encrypt(tenant_id, AESGCM.generate_key(256), _key_aad(tenant_id, object_key.pk))
    object_key.data_key_version = envelope.key_version_of(sealed)
    object_key.wrapped_key = sealed
    with tenant_context(tenant_id):
        object_key.save()
    return object_key


def _cipher(object_key_id: uuid.UUID, tenant_id: uuid.UUID) -> AESGCM:
    with tenant_context(tenant_id):
        object_key = ObjectKey.objects.filter(pk=object_key_id).first()
    if object_key is None:
        raise DecryptionError("The content key was destroyed (shredded); the content is unrecoverable.")
    key = envelope.decrypt(tenant_id, bytes(object_key.wrapped_key), _key_aad(tenant_id, object_key.pk))
    return AESGCM(key)


def content_seal(object_key: ObjectKey, plaintext: bytes, *, aad: bytes = b"") -> bytes:
    return envelope.seal(_cipher(object_key.pk, object_key.tenant_id), 0, plaintext, aad)


def content_open(object_key_id: uuid.UUID, tenant_id: uuid.UUID, blob: bytes, *, aad: bytes = b"") -> bytes:
    cipher = _cipher(object_key_id, tenant_id)
    return envelope.open_sealed(lambda _version: cipher, blob, aad)


def shred(object_key: ObjectKey, *, actor: Actor, reason: str) -> None:
    """Destroy the key of one object (crypto-shredding). Idempotent."""
    with tenant_context(object_key.tenant_id):
        deleted, _ = ObjectKey.objects.filter(pk=object_key.pk).delete()
        audit.record(
            actor=actor,
            action="crypto.shred",
            target=("crypto.objectkey", object_key.pk),
            tenant=object_key.tenant_id,
            reason=reason,
            details={"destroyed": bool(deleted)},
        )

"""Per-object keys for content that retention must be able to destroy (message bodies, portal
messages, import uploads, exports). The content is sealed with its own key; the object key is
wrapped by the tenant's current **epoch key**, which lives in the key store outside the database
and its backups (keystore.py).

`shred()` deletes the object key row. A backup taken before still holds that row, wrapped by an
epoch key: `epochs_rotate()` (on a schedule, and on demand) re-wraps every live object key under a
fresh epoch key and then destroys the older epoch keys, after which the row in any earlier backup
opens with nothing. Object keys made before epochs existed are wrapped by the tenant's data key
(`epoch` empty) until the first rotation re-wraps them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import transaction
from django.utils import timezone

from healthmail import audit_trail as audit
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import envelope
from .epochs import (
    epoch_current,
    epoch_key,
    epoch_lock,
    epoch_new,
    key_aad,
    object_key_unwrap,
    tenant_uuid,
    unwrap_with,
    wrap,
    wrap_with,
)
from .errors import DecryptionError
from .integrity import Damage, damage_report
from .keystore import key_store
from .models import EpochKey, ObjectKey

REWRAP_BATCH = 500


def object_key_create(*, tenant: Tenant | uuid.UUID) -> ObjectKey:
    tenant_id = tenant_uuid(tenant)
    with tenant_context(tenant_id), transaction.atomic():
        epoch_lock(tenant_id, exclusive=False)
        epoch = epoch_current(tenant_id)
        object_key = ObjectKey(tenant_id=tenant_id, epoch=epoch, data_key_version=0)
        object_key.wrapped_key = wrap(
            epoch.pk, tenant_id, AESGCM.generate_key(256), key_aad(tenant_id, object_key.pk)
        )
        object_key.save()
    return object_key


def _cipher(object_key_id: uuid.UUID, tenant_id: uuid.UUID) -> AESGCM:
    with tenant_context(tenant_id):
        object_key = ObjectKey.objects.filter(pk=object_key_id).first()
    if object_key is None:
        raise DecryptionError("The content key was destroyed (shredded); the content is unrecoverable.")
    return AESGCM(
        object_key_unwrap(
            tenant_id=tenant_id,
            object_key_id=object_key.pk,
            epoch_id=object_key.epoch_id,
            wrapped=bytes(object_key.wrapped_key),
        )
    )


def content_seal(object_key: ObjectKey, plaintext: bytes, *, aad: bytes = b"") -> bytes:
    return envelope.seal(_cipher(object_key.pk, object_key.tenant_id), 0, plaintext, aad)


def content_open(object_key_id: uuid.UUID, tenant_id: uuid.UUID, blob: bytes, *, aad: bytes = b"") -> bytes:
    cipher = _cipher(object_key_id, tenant_id)
    return envelope.open_sealed(lambda _version: cipher, blob, aad)


def shred(object_key: ObjectKey, *, actor: Actor, reason: str) -> None:
    """Destroy the key of one object (crypto-shredding). Idempotent. Copies in earlier backups
    stay openable until the next epochs_rotate() has destroyed the epoch key that wrapped it."""
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


@dataclass
class EpochRotation:
    epoch: uuid.UUID
    rewrapped: int = 0
    destroyed: list[uuid.UUID] = field(default_factory=list)
    damaged: list[Damage] = field(default_factory=list)


def epochs_rotate(tenant: Tenant | uuid.UUID, *, settle_seconds: float = 0.0) -> EpochRotation:
    """Start a new epoch, re-wrap every live object key under it, then destroy every older epoch
    key (and with it, the object keys that only earlier backups still hold)."""
    tenant_id = tenant_uuid(tenant)
    with tenant_context(tenant_id), transaction.atomic():
        epoch_lock(tenant_id, exclusive=True)
        EpochKey.objects.filter(tenant_id=tenant_id, retired_at__isnull=True).update(
            retired_at=timezone.now()
        )
        result = EpochRotation(epoch_new(tenant_id).pk)
    time.sleep(settle_seconds)
    while _rewrap_batch(tenant_id, result):
        pass
    with tenant_context(tenant_id):
        old = list(
            EpochKey.objects.filter(tenant_id=tenant_id, destroyed_at__isnull=True).exclude(pk=result.epoch)
        )
        damaged = [uuid.UUID(d.object_id) for d in result.damaged]
        left = ObjectKey.objects.filter(epoch__in=old).exclude(pk__in=damaged).exists()
    if left:  # never destroy a key a live object still needs; the next run finishes the move
        raise RuntimeError("Object keys are still under an older epoch; nothing was destroyed.")
    for epoch in old:
        key_store().key_destroy(tenant_id=tenant_id, key_id=epoch.pk)
        with tenant_context(tenant_id):
            EpochKey.objects.filter(pk=epoch.pk).update(destroyed_at=timezone.now())
        result.destroyed.append(epoch.pk)
    for damage in result.damaged:
        damage_report(damage, found_by="epoch rotation")
    if result.rewrapped or result.destroyed:
        audit.record(
            actor=Actor.system("crypto.epochs_rotate"),
            action="crypto.epoch_rotate",
            target=("crypto.epochkey", result.epoch),
            tenant=tenant_id,
            details={"rewrapped": result.rewrapped, "destroyed": len(result.destroyed)},
        )
    return result


def _rewrap_batch(tenant_id: uuid.UUID, result: EpochRotation) -> bool:
    """Re-wrap one batch of object keys still under an older epoch (or the data key). False: done."""
    skipped = [uuid.UUID(d.object_id) for d in result.damaged]
    with tenant_context(tenant_id), transaction.atomic():
        rows = list(
            ObjectKey.objects.filter(tenant_id=tenant_id)
            .exclude(epoch_id=result.epoch)
            .exclude(pk__in=skipped)
            .select_for_update()
            .order_by("pk")[:REWRAP_BATCH]
        )
        # Each epoch key is read from the key store once per batch, not once per object key.
        epoch_bytes = {result.epoch: epoch_key(tenant_id, result.epoch)}
        for row in rows:
            aad = key_aad(tenant_id, row.pk)
            try:
                if row.epoch_id is None:
                    key = object_key_unwrap(
                        tenant_id=tenant_id,
                        object_key_id=row.pk,
                        epoch_id=None,
                        wrapped=bytes(row.wrapped_key),
                    )
                else:
                    if row.epoch_id not in epoch_bytes:
                        epoch_bytes[row.epoch_id] = epoch_key(tenant_id, row.epoch_id)
                    key = unwrap_with(epoch_bytes[row.epoch_id], bytes(row.wrapped_key), aad)
            except DecryptionError as error:
                result.damaged.append(Damage(tenant_id, ObjectKey._meta.db_table, str(row.pk), str(error)))
                continue
            row.epoch_id, row.data_key_version = result.epoch, 0
            row.wrapped_key = wrap_with(epoch_bytes[result.epoch], key, aad)
        done = [row for row in rows if row.epoch_id == result.epoch]
        ObjectKey.objects.bulk_update(done, ["epoch", "wrapped_key", "data_key_version"])
        result.rewrapped += len(done)
    return bool(rows)

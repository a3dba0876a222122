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

import secrets
import time
import uuid
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import connection, transaction
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
    wrap,
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
    after: uuid.UUID | None = None
    while (after := _rewrap_batch(tenant_id, result, after)) is not None:
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


def _rewrap_batch(tenant_id: uuid.UUID, result: EpochRotation, after: uuid.UUID | None) -> uuid.UUID | None:
    """Re-wrap the next batch (ids above `after`) of object keys still under an older epoch (or the
    data key); returns the last id read, None when done. Keys made meanwhile are already under the
    new epoch, so walking the ids once (keyset, not rescanning moved rows) finds every one.

    Rows are read as tuples and written back with one UPDATE over arrays: building model instances
    and Django's bulk_update (a CASE per row) cost ~25 times as much CPU (bench/epochs.py)."""
    with tenant_context(tenant_id), transaction.atomic():
        pending = ObjectKey.objects.filter(tenant_id=tenant_id).exclude(epoch_id=result.epoch)
        if after is not None:
            pending = pending.filter(pk__gt=after)
        rows = list(
            pending.select_for_update()
            .order_by("pk")
            .values_list("pk", "epoch_id", "wrapped_key")[:REWRAP_BATCH]
        )
        # Each epoch key is read from the key store once per batch, not once per object key.
        ciphers = {result.epoch: AESGCM(epoch_key(tenant_id, result.epoch))}
        nonces = secrets.token_bytes(12 * len(rows))
        ids, wrapped = [], []
        for start, (pk, epoch_id, blob) in zip(range(0, len(nonces), 12), rows, strict=True):
            aad = key_aad(tenant_id, pk)
            try:
                key = _unwrap_old(tenant_id, pk, epoch_id, bytes(blob), aad, ciphers)
            except DecryptionError as error:
                result.damaged.append(Damage(tenant_id, ObjectKey._meta.db_table, str(pk), str(error)))
                continue
            nonce = nonces[start : start + 12]
            ids.append(pk)
            wrapped.append(nonce + ciphers[result.epoch].encrypt(nonce, key, aad))
        if ids:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {ObjectKey._meta.db_table} AS o "  # noqa: S608 - the name comes from the model
                    "SET epoch_id = %s, data_key_version = 0, wrapped_key = t.wrapped "
                    "FROM unnest(%s::uuid[], %s::bytea[]) AS t(id, wrapped) "
                    "WHERE o.tenant_id = %s AND o.id = t.id",
                    [result.epoch, ids, wrapped, tenant_id],
                )
                result.rewrapped += cursor.rowcount
    return rows[-1][0] if rows else None


def _unwrap_old(
    tenant_id: uuid.UUID,
    pk: uuid.UUID,
    epoch_id: uuid.UUID | None,
    blob: bytes,
    aad: bytes,
    ciphers: dict[uuid.UUID, AESGCM],
) -> bytes:
    if epoch_id is None:  # made before epochs: wrapped by the tenant's data key
        return object_key_unwrap(tenant_id=tenant_id, object_key_id=pk, epoch_id=None, wrapped=blob)
    if epoch_id not in ciphers:
        ciphers[epoch_id] = AESGCM(epoch_key(tenant_id, epoch_id))
    try:
        plain: bytes = ciphers[epoch_id].decrypt(blob[:12], blob[12:], aad)
    except InvalidTag:
        raise DecryptionError("An object key failed authentication (tampered or moved).") from None
    return plain

"""Per-row keys: a record whose deletion must hold against backups (a contact) gets a key of its
own, an object key (crypto_objectkey) wrapped by the tenant's epoch key, and its encrypted fields
are sealed under that key instead of the tenant data key:

    b"\\x02" | object key id (16 bytes) | nonce (12) | ciphertext + tag (16)

Deleting the key row (`row_keys_shred`) makes every field of the record unreadable at once; the
copy of the row in an earlier backup is wrapped by an epoch key that the next epoch rotation
destroys. The model names the column holding its key (`ROW_KEY_FIELD`, declared after its
encrypted fields); format-1 ciphertexts (tenant data key) still open and are moved by rotation.

Unwrapping costs a key store read and a query per key, so keys are cached: on the model instance
(a record read field by field unwraps once), and inside `key_scope()` (a request, an import batch,
a list) by key id, so a page of contacts loads its keys in one query and the epoch key once.
"""

from __future__ import annotations

import contextvars
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import connection, models, transaction

from healthmail.tenants.context import current_tenant_id, tenant_context
from healthmail.tenants.models import TenantOwnedModel

from . import envelope
from .epochs import epoch_current, epoch_key, epoch_lock, key_aad, unwrap_with
from .errors import DecryptionError
from .models import ObjectKey

FORMAT = 2
_PREFIX = 1 + 16
HEADER_SIZE = _PREFIX + 12
RowKey = tuple[uuid.UUID, AESGCM]
# A scope's cache: row key id -> cipher, and ("epoch", epoch id) -> epoch key bytes.
Cache = dict[Any, Any]

_scope: contextvars.ContextVar[Cache | None] = contextvars.ContextVar("row_key_scope", default=None)


@contextmanager
def key_scope() -> Iterator[None]:
    """Cache unwrapped keys (row keys and epoch keys) until the block ends; nested scopes share."""
    if _scope.get() is not None:
        yield
        return
    token = _scope.set({})
    try:
        yield
    finally:
        _scope.reset(token)


def _in_tenant(tenant_id: uuid.UUID) -> AbstractContextManager[Any]:
    """The tenant's transaction: the caller's when it is already in one (no extra round trips)."""
    if connection.in_atomic_block and current_tenant_id() == tenant_id:
        return nullcontext()
    return tenant_context(tenant_id)


def _epoch_bytes(tenant_id: uuid.UUID, epoch_id: object, cache: Cache) -> bytes:
    found = cache.get(("epoch", epoch_id))
    if found is None:
        found = cache[("epoch", epoch_id)] = epoch_key(tenant_id, epoch_id)
    return found


def row_ciphers(tenant_id: uuid.UUID, key_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, AESGCM]:
    """The ciphers of these keys, loaded in one query; a destroyed key is absent from the answer."""
    cache = _scope.get()
    local = cache if cache is not None else {}
    wanted = {uuid.UUID(str(key_id)) for key_id in key_ids if key_id}
    found = {key_id: local[key_id] for key_id in wanted if key_id in local}
    missing = wanted - set(found)
    if missing:
        with _in_tenant(tenant_id):
            rows = list(
                ObjectKey.objects.filter(tenant_id=tenant_id, pk__in=missing).values_list(
                    "pk", "epoch_id", "wrapped_key"
                )
            )
        for key_id, epoch_id, wrapped in rows:
            try:
                key = _unwrap(tenant_id, key_id, epoch_id, bytes(wrapped), local)
            except DecryptionError:  # a damaged key damages its record only (reported where read)
                continue
            found[key_id] = local[key_id] = AESGCM(key)
    return found


def _unwrap(tenant_id: uuid.UUID, key_id: uuid.UUID, epoch_id: object, wrapped: bytes, cache: Cache) -> bytes:
    aad = key_aad(tenant_id, key_id)
    if epoch_id is None:  # never for row keys, which are born under an epoch; kept general
        return envelope.decrypt(tenant_id, wrapped, aad)
    return unwrap_with(_epoch_bytes(tenant_id, epoch_id, cache), wrapped, aad)


def row_cipher(tenant_id: uuid.UUID, key_id: uuid.UUID) -> AESGCM:
    found = row_ciphers(tenant_id, [key_id]).get(uuid.UUID(str(key_id)))
    if found is None:
        raise DecryptionError(
            "The record's key was destroyed (shredded) or does not unwrap; its data cannot be read."
        )
    return found


def row_keys_create(tenant_id: uuid.UUID, count: int) -> list[RowKey]:
    """`count` new keys under the tenant's current epoch, stored in one statement. Must run inside
    the caller's transaction: the shared epoch lock is held until it commits."""
    if count == 0:
        return []
    with _in_tenant(tenant_id), nullcontext() if connection.in_atomic_block else transaction.atomic():
        epoch_lock(tenant_id, exclusive=False)
        epoch = epoch_current(tenant_id)
        cache = _scope.get()
        epoch_bytes = _epoch_bytes(tenant_id, epoch.pk, cache if cache is not None else {})
        epoch_cipher = AESGCM(epoch_bytes)
        # Keys, ids and nonces from one read of the OS random source; one INSERT for the lot
        # (model instances and bulk_create cost more than everything else here).
        randomness = secrets.token_bytes(count * (32 + 16 + 12))
        ids, wrapped, made = [], [], []
        for start in range(0, len(randomness), 60):
            raw, id_bytes, nonce = (
                randomness[start : start + 32],
                randomness[start + 32 : start + 48],
                randomness[start + 48 : start + 60],
            )
            key_id = uuid.UUID(bytes=id_bytes, version=4)
            ids.append(key_id)
            wrapped.append(nonce + epoch_cipher.encrypt(nonce, raw, key_aad(tenant_id, key_id)))
            made.append((key_id, AESGCM(raw)))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {ObjectKey._meta.db_table} "  # noqa: S608 - the name comes from the model
                "(id, tenant_id, epoch_id, data_key_version, wrapped_key, created_at) "
                "SELECT t.id, %s, %s, 0, t.wrapped, now() "
                "FROM unnest(%s::uuid[], %s::bytea[]) AS t(id, wrapped)",
                [tenant_id, epoch.pk, ids, wrapped],
            )
    if cache is not None:
        cache.update(made)
    return made


def row_keys_shred(tenant_id: uuid.UUID, key_ids: Iterable[uuid.UUID | None]) -> int:
    """Delete these keys; returns how many rows the database deleted."""
    wanted = [key_id for key_id in key_ids if key_id]
    if not wanted:
        return 0
    cache = _scope.get()
    if cache is not None:
        for key_id in wanted:
            cache.pop(uuid.UUID(str(key_id)), None)
    with tenant_context(tenant_id):
        deleted, _ = ObjectKey.objects.filter(tenant_id=tenant_id, pk__in=wanted).delete()
    return deleted


def seal(row_key: RowKey, plaintext: bytes, aad: bytes) -> bytes:
    key_id, cipher = row_key
    nonce = secrets.token_bytes(12)
    return bytes([FORMAT]) + key_id.bytes + nonce + cipher.encrypt(nonce, plaintext, aad)


def seal_many(items: Sequence[tuple[RowKey, bytes, bytes]]) -> list[bytes]:
    """`seal` for a batch of (row key, plaintext, aad), the nonces read from the OS in one go."""
    nonces = secrets.token_bytes(12 * len(items))
    sealed = []
    for start, ((key_id, cipher), plaintext, aad) in zip(range(0, len(nonces), 12), items, strict=True):
        nonce = nonces[start : start + 12]
        sealed.append(bytes([FORMAT]) + key_id.bytes + nonce + cipher.encrypt(nonce, plaintext, aad))
    return sealed


def key_id_of(blob: bytes) -> uuid.UUID | None:
    """The row key a ciphertext names; None for a format-1 ciphertext (tenant data key)."""
    if len(blob) >= _PREFIX and blob[0] == FORMAT:
        return uuid.UUID(bytes=bytes(blob[1:_PREFIX]))
    return None


def open_field(tenant_id: uuid.UUID, blob: bytes, aad: bytes, *, holder: models.Model | None = None) -> bytes:
    """Decrypt one stored field of either format. `holder`: the instance it belongs to, which keeps
    its unwrapped key for its other fields."""
    key_id = key_id_of(blob)
    if key_id is None:
        return envelope.decrypt(tenant_id, blob, aad)
    if len(blob) < HEADER_SIZE + 16:
        raise DecryptionError("Ciphertext is truncated.")
    held = holder.__dict__.get("_row_key") if holder is not None else None
    cipher = held[1] if held and held[0] == key_id else row_cipher(tenant_id, key_id)
    if holder is not None:
        holder.__dict__["_row_key"] = (key_id, cipher)
    try:
        return cipher.decrypt(blob[_PREFIX:HEADER_SIZE], blob[HEADER_SIZE:], aad)
    except InvalidTag:
        raise DecryptionError("Ciphertext failed authentication (tampered, moved, or wrong key).") from None


def row_key_field(model: type[models.Model]) -> str | None:
    found: str | None = getattr(model, "ROW_KEY_FIELD", None)
    return found


def instance_row_key(instance: TenantOwnedModel) -> RowKey:
    """The key that seals this instance's fields: its own, made (and recorded on its row) on first
    write. Two writers making a key for the same stored row at once agree on the first one stored."""
    held: RowKey | None = instance.__dict__.get("_row_key")
    attname = row_key_field(type(instance))
    if attname is None:
        raise TypeError(f"{type(instance).__name__} has no per-row key (ROW_KEY_FIELD).")
    key_id = getattr(instance, attname)
    if held and held[0] == key_id:
        return held
    tenant_id = instance.tenant_id
    if key_id is not None:
        row_key = (uuid.UUID(str(key_id)), row_cipher(tenant_id, key_id))
    else:
        row_key = row_keys_create(tenant_id, 1)[0]
        if not instance._state.adding:
            row_key = _record_key(instance, attname, row_key)
        setattr(instance, attname, row_key[0])
    instance.__dict__["_row_key"] = row_key
    return row_key


def _record_key(instance: TenantOwnedModel, attname: str, row_key: RowKey) -> RowKey:
    model = type(instance)
    with tenant_context(instance.tenant_id):
        stored = model._default_manager.filter(pk=instance.pk, **{f"{attname}__isnull": True}).update(
            **{attname: row_key[0]}
        )
        if stored:
            return row_key
        key_id = model._default_manager.filter(pk=instance.pk).values_list(attname, flat=True).first()
    if key_id is None:  # no stored row (yet): the key made here goes in with it
        return row_key
    row_keys_shred(instance.tenant_id, [row_key[0]])
    return uuid.UUID(str(key_id)), row_cipher(instance.tenant_id, key_id)

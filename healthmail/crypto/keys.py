"""Tenant data keys and index keys: created on first use, cached unwrapped per process.

Each is wrapped by a key derived from two: the master key (the platform's, in its secret manager)
and the tenant's own key (TenantRootKey, in the key store outside the database: where a customer's
KMS would hold it). A backup of the database holds neither; destroying the tenant key shreds the
tenant (shredding.py). Keys wrapped before tenant keys existed name no tenant key and open with the
master key alone until `rotate_keys --master` re-wraps them.

A key version never changes once written, so the unwrapped cache by (tenant, purpose, version) is
right for as long as the key exists. "Which version is current" can go stale; it is re-read every
CURRENT_TTL seconds, and key rotation waits that long before its final pass (see rotation.py).

A key can stop existing in another process: a tenant shred there leaves this process holding
unwrapped copies. So a cached key is used only while its tenant was checked within the last
`HEALTHMAIL_KEY_CACHE_CHECK_SECONDS`: one query per tenant per period asks whether a tenant key of
the tenant was destroyed, and if so every cached copy of a key whose row is gone or whose tenant
key was destroyed is dropped. After a shred anywhere, no process decrypts the tenant's data for
longer than that period.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from typing import TYPE_CHECKING, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from healthmail.tenants.context import tenant_context

from .errors import DecryptionError
from .keystore import key_store
from .master import key_ring
from .models import TenantKey, TenantRootKey

if TYPE_CHECKING:
    from healthmail.tenants.models import Tenant

CURRENT_TTL = 30.0

_lock = threading.Lock()
_unwrapped: dict[tuple[uuid.UUID, str, int], bytes] = {}
_ciphers: dict[tuple[uuid.UUID, str, int], AESGCM] = {}
_current: dict[tuple[uuid.UUID, str], tuple[int, float]] = {}
_checked: dict[uuid.UUID, float] = {}  # tenant -> when its cached keys were last checked as live


# What the crypto helpers accept for "the tenant": the model instance or its id.
TenantRef: TypeAlias = "Tenant | uuid.UUID | str"


def _wrap_aad(tenant_id: uuid.UUID, purpose: str, version: int) -> bytes:
    return f"tenant-key|{tenant_id}|{purpose}|{version}".encode()


def root_key_current(tenant_id: uuid.UUID) -> TenantRootKey:
    """The tenant's live tenant key; the first use makes it (in the key store, then its row)."""
    with tenant_context(tenant_id):
        found = TenantRootKey.objects.filter(tenant_id=tenant_id, destroyed_at__isnull=True).first()
        if found is not None:
            return found
        root = TenantRootKey(tenant_id=tenant_id)
        key_store().key_create(tenant_id=tenant_id, key_id=root.pk)
        try:
            with transaction.atomic():
                root.save()
        except IntegrityError:  # another process made the tenant's key first: use theirs
            key_store().key_destroy(tenant_id=tenant_id, key_id=root.pk)
            return TenantRootKey.objects.get(tenant_id=tenant_id, destroyed_at__isnull=True)
        return root


def _wrapping_cipher(tenant_id: uuid.UUID, master_key_id: str, root_key_id: uuid.UUID | None) -> AESGCM:
    ring = key_ring()
    if root_key_id is None:
        return ring.cipher(master_key_id)
    master_part = ring.derive(f"tenant-key-wrap|{tenant_id}", master_key_id)
    root = key_store().key_load(tenant_id=tenant_id, key_id=uuid.UUID(str(root_key_id)))
    info = f"tenant-key|{tenant_id}|{root_key_id}".encode()
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=root, info=info).derive(master_part))


def wrap_key(key: bytes, *, tenant_id: uuid.UUID, purpose: str, version: int) -> tuple[str, uuid.UUID, bytes]:
    """(master key id, tenant key id, wrapped key) under the current master key and tenant key."""
    ring, root = key_ring(), root_key_current(tenant_id)
    nonce = secrets.token_bytes(12)
    cipher = _wrapping_cipher(tenant_id, ring.current_id, root.pk)
    return (
        ring.current_id,
        root.pk,
        nonce + cipher.encrypt(nonce, key, _wrap_aad(tenant_id, purpose, version)),
    )


def unwrap(row: TenantKey) -> bytes:
    blob = bytes(row.wrapped_key)
    try:
        cipher = _wrapping_cipher(row.tenant_id, row.master_key_id, row.root_key_id)
        return cipher.decrypt(blob[:12], blob[12:], _wrap_aad(row.tenant_id, row.purpose, row.version))
    except InvalidTag:
        raise DecryptionError(
            f"Tenant {row.purpose} key v{row.version} does not unwrap with its master and tenant keys."
        ) from None


def key_row(tenant_id: uuid.UUID, purpose: str, version: int | None) -> TenantKey | None:
    with tenant_context(tenant_id):
        keys = TenantKey.objects.filter(tenant_id=tenant_id, purpose=purpose)
        if version is not None:
            return keys.filter(version=version).first()
        return keys.order_by("-version").first()


def create_version(tenant_id: uuid.UUID, purpose: str, *, lookup_state: str = "active") -> int:
    """Add a new key version (first use or rotation); returns the version now current.
    `lookup_state`: for index keys, "pending" starts an index-key rotation (blind.py)."""
    with tenant_context(tenant_id):
        newest = key_row(tenant_id, purpose, None)
        version = (newest.version + 1) if newest else 1
        key = AESGCM.generate_key(256)
        master_key_id, root_key_id, wrapped = wrap_key(
            key, tenant_id=tenant_id, purpose=purpose, version=version
        )
        try:
            with transaction.atomic():
                TenantKey.objects.create(
                    tenant_id=tenant_id,
                    purpose=purpose,
                    version=version,
                    master_key_id=master_key_id,
                    root_key_id=root_key_id,
                    wrapped_key=wrapped,
                    lookup_state=lookup_state,
                )
        except IntegrityError:
            # Another process created this version first: use theirs.
            pass
    forget_current(tenant_id)
    return version


def _live_after_shred(tenant_id: uuid.UUID) -> set[tuple[str, int]] | None:
    """None while the tenant never had a tenant key destroyed; after a shred, the key rows still live."""
    with tenant_context(tenant_id):
        if not TenantRootKey.objects.filter(tenant_id=tenant_id, destroyed_at__isnull=False).exists():
            return None
        rows = TenantKey.objects.filter(tenant_id=tenant_id).filter(
            Q(root_key__isnull=True) | Q(root_key__destroyed_at__isnull=True)
        )
        return set(rows.values_list("purpose", "version"))


def cache_check(tenant_id: uuid.UUID) -> None:
    """After a shred of the tenant anywhere, drop this process's copies of its keys that no longer
    exist; checked at most once per HEALTHMAIL_KEY_CACHE_CHECK_SECONDS per tenant (one EXISTS query).
    Only a destroyed tenant key triggers it: a key row merely missing (its creating transaction
    rolled back while this process kept it) is left to the callers that handle that case."""
    period: float = settings.HEALTHMAIL_KEY_CACHE_CHECK_SECONDS
    checked = _checked.get(tenant_id)
    now = time.monotonic()
    if checked is not None and now - checked < period:
        return
    live = _live_after_shred(tenant_id)
    with _lock:
        if live is not None:
            for cache_key in [k for k in _unwrapped if k[0] == tenant_id and (k[1], k[2]) not in live]:
                del _unwrapped[cache_key]
            for cache_key in [k for k in _ciphers if k[0] == tenant_id and (k[1], k[2]) not in live]:
                del _ciphers[cache_key]
        _checked[tenant_id] = now


def key_bytes(tenant_id: uuid.UUID, purpose: str, version: int) -> bytes:
    cache_key = (tenant_id, purpose, version)
    cache_check(tenant_id)
    key = _unwrapped.get(cache_key)
    if key is None:
        row = key_row(tenant_id, purpose, version)
        if row is None:
            raise DecryptionError(
                f"No {purpose} key v{version} exists for this tenant (destroyed or never made)."
            )
        key = unwrap(row)
        with _lock:
            _unwrapped[cache_key] = key
    return key


def cipher(tenant_id: uuid.UUID, purpose: str, version: int) -> AESGCM:
    cache_key = (tenant_id, purpose, version)
    cache_check(tenant_id)
    found = _ciphers.get(cache_key)
    if found is None:
        found = AESGCM(key_bytes(tenant_id, purpose, version))
        with _lock:
            _ciphers[cache_key] = found
    return found


def current_version(tenant_id: uuid.UUID, purpose: str) -> int:
    cached = _current.get((tenant_id, purpose))
    if cached and time.monotonic() - cached[1] < CURRENT_TTL:
        return cached[0]
    row = key_row(tenant_id, purpose, None)
    version = row.version if row else create_version(tenant_id, purpose)
    with _lock:
        _current[(tenant_id, purpose)] = (version, time.monotonic())
    return version


def forget_current(tenant_id: uuid.UUID | None = None) -> None:
    """Drop cached "current version" entries (after a rotation, or in tests)."""
    with _lock:
        for cache_key in list(_current):
            if tenant_id is None or cache_key[0] == tenant_id:
                del _current[cache_key]


def forget_all() -> None:
    with _lock:
        _current.clear()
        _unwrapped.clear()
        _ciphers.clear()
        _checked.clear()
    from . import blind  # which index-key versions are written and looked up

    blind.forget_versions()

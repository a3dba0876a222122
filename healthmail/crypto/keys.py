"""Tenant data keys and index keys: created on first use, cached unwrapped per process.

Each is wrapped by a key derived from two: the master key (the platform's, in its secret manager)
and the tenant's own key (TenantRootKey, in the key store outside the database: where a customer's
KMS would hold it). A backup of the database holds neither; destroying the tenant key shreds the
tenant (shredding.py). Keys wrapped before tenant keys existed name no tenant key and open with the
master key alone until `rotate_keys --master` re-wraps them.

A key version never changes once written, so the unwrapped cache by (tenant, purpose, version) is
right for as long as the key exists. "Which version is current" can go stale; it is re-read every
CURRENT_TTL seconds, and key rotation waits that long before its final pass (see rotation.py).

A key made inside a transaction exists only once that transaction commits. Until then it is kept
apart, for the connection that made it (`_uncommitted`), and enters the process's cache when the
transaction commits (`transaction.on_commit`); if the transaction (or a savepoint around the key)
rolls back, Django drops the commit hook and the key is forgotten with it. So no process seals a
value or computes an index under a key no other process will ever find.

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
from typing import TYPE_CHECKING, Any, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import IntegrityError, connection, transaction
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
_UNCOMMITTED = "_healthmail_uncommitted_keys"  # on the connection: keys made in its open transaction


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


def create_version(
    tenant_id: uuid.UUID, purpose: str, *, lookup_state: str = "active", version: int | None = None
) -> int:
    """Add a new key version (first use or rotation); returns the version now current.
    `lookup_state`: for index keys, "pending" starts an index-key rotation (blind.py).
    `version`: this one rather than the next (chain keys share their index key's number)."""
    with tenant_context(tenant_id):
        if version is None:
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
        else:
            if connection.in_atomic_block:
                _uncommitted_add((tenant_id, purpose, version), key)
    forget_current(tenant_id)
    return version


def _pending() -> dict[tuple[uuid.UUID, str, int], list[Any]]:
    """This connection's keys made in its open transaction: cache key -> [key or None, hook, hook's
    position in the connection's commit hooks]."""
    pending: dict[tuple[uuid.UUID, str, int], list[Any]] | None = getattr(connection, _UNCOMMITTED, None)
    if pending is None:
        pending = {}
        setattr(connection, _UNCOMMITTED, pending)
    return pending


def _uncommitted_add(cache_key: tuple[uuid.UUID, str, int], key: bytes) -> None:
    """A key whose row this connection's open transaction made: served to this connection only,
    cached for everyone once the transaction commits, gone with it if it rolls back."""
    pending = _pending()

    def committed() -> None:
        pending.pop(cache_key, None)

    transaction.on_commit(committed)
    # Where the hook sits: entries before it never move while it stays (a savepoint rollback
    # drops only hooks registered inside the savepoint, which come after those made before it).
    pending[cache_key] = [key, committed, len(connection.run_on_commit) - 1]


def _uncommitted(cache_key: tuple[uuid.UUID, str, int]) -> list[Any] | None:
    """This connection's entry for a key it made in its open transaction, while the hook marking
    its commit is pending (a rollback, of the transaction or of a savepoint around the key, drops
    the hook, and the entry with it)."""
    pending = getattr(connection, _UNCOMMITTED, None)
    if not pending or cache_key not in pending:
        return None
    entry = pending[cache_key]
    hooks = connection.run_on_commit
    if entry[2] < len(hooks) and hooks[entry[2]][1] is entry[1]:
        return entry  # type: ignore[no-any-return]
    del pending[cache_key]  # rolled back: the row is gone (or is another process's key)
    return None


def _uncommitted_current(tenant_id: uuid.UUID, purpose: str) -> int | None:
    """The newest version of this purpose this connection made in its open transaction."""
    pending = getattr(connection, _UNCOMMITTED, None)
    if not pending:
        return None
    made = [key for key in list(pending) if key[:2] == (tenant_id, purpose) and _uncommitted(key)]
    return max((key[2] for key in made), default=None)


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
    entry = _uncommitted(cache_key)
    if entry is not None and entry[0] is not None:
        return bytes(entry[0])
    key = None if entry is not None else _unwrapped.get(cache_key)
    if key is None:
        row = key_row(tenant_id, purpose, version)
        if row is None:
            raise DecryptionError(
                f"No {purpose} key v{version} exists for this tenant (destroyed or never made)."
            )
        key = unwrap(row)
        if entry is not None:
            entry[0] = key  # still not committed: held for this connection only
        else:
            with _lock:
                _unwrapped[cache_key] = key
    return key


def cipher(tenant_id: uuid.UUID, purpose: str, version: int) -> AESGCM:
    cache_key = (tenant_id, purpose, version)
    cache_check(tenant_id)
    if _uncommitted(cache_key) is not None:
        return AESGCM(key_bytes(tenant_id, purpose, version))
    found = _ciphers.get(cache_key)
    if found is None:
        found = AESGCM(key_bytes(tenant_id, purpose, version))
        with _lock:
            _ciphers[cache_key] = found
    return found


def current_version(tenant_id: uuid.UUID, purpose: str) -> int:
    made_here = _uncommitted_current(tenant_id, purpose)
    if made_here is not None:
        return made_here
    cached = _current.get((tenant_id, purpose))
    if cached and time.monotonic() - cached[1] < CURRENT_TTL:
        return cached[0]
    row = key_row(tenant_id, purpose, None)
    version = row.version if row else create_version(tenant_id, purpose)
    if _uncommitted((tenant_id, purpose, version)) is None:  # else: gone if it rolls back
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
    for entry in getattr(connection, _UNCOMMITTED, {}).values():
        entry[0] = None  # read (and unwrapped) again, still not cached until committed
    with _lock:
        _current.clear()
        _unwrapped.clear()
        _ciphers.clear()
        _checked.clear()
    from . import blind  # which index-key versions are written and looked up

    blind.forget_versions()

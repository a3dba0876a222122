"""Per-tenant Ed25519 signatures that anyone can check with the published public key.

    signature, key_id = sign(tenant_id, message)         # key_id: "ed25519:<fingerprint>"
    signature_ok(tenant_id, message, signature, key_id)  # on the platform (trust from the master key)
    public_key_verifies(public_key, message, signature)  # anywhere: hex, or a PEM file's text

On the platform a signature is checked against the public key recomputed from the sealed private key,
so a row edited in the database cannot vouch for a forged signature; outsiders check with the public
key published on the audit page, in the API and in every package.
"""

from __future__ import annotations

import hashlib
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.db import connection
from django.utils import timezone

from healthmail.tenants.context import tenant_context

from . import envelope
from .errors import DecryptionError
from .keys import TenantRef
from .models import SigningKey

KEY_ID_PREFIX = "ed25519:"


def _tenant(tenant: TenantRef) -> uuid.UUID:
    return uuid.UUID(str(getattr(tenant, "pk", tenant)))


def signing_key_aad(tenant_id: uuid.UUID, fingerprint: str) -> bytes:
    return f"signing-key|{tenant_id}|{fingerprint}".encode()


def fingerprint_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:24]  # "ed25519:" + 24 fits every key_id column


def _create(tenant_id: uuid.UUID) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    public_raw = private.public_key().public_bytes_raw()
    fingerprint = fingerprint_of(public_raw)
    return SigningKey.objects.create(
        tenant_id=tenant_id,
        fingerprint=fingerprint,
        public_key=public_raw.hex(),
        wrapped_key=envelope.encrypt(
            tenant_id, private.private_bytes_raw(), signing_key_aad(tenant_id, fingerprint)
        ),
    )


def signing_key_current(tenant: TenantRef) -> SigningKey:
    """The key that signs now; the first use makes one (serialized per tenant, so never two)."""
    tenant_id = _tenant(tenant)
    with tenant_context(tenant_id):
        found = SigningKey.objects.filter(tenant_id=tenant_id, retired_at__isnull=True).first()
        if found is not None:
            return found
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"signing-key:{tenant_id}"])
        found = SigningKey.objects.filter(tenant_id=tenant_id, retired_at__isnull=True).first()
        return found or _create(tenant_id)


def signing_key_rotate(tenant: TenantRef) -> SigningKey:
    """Retire the current key (kept, so its signatures stay checkable) and start a new one."""
    tenant_id = _tenant(tenant)
    with tenant_context(tenant_id):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"signing-key:{tenant_id}"])
        SigningKey.objects.filter(tenant_id=tenant_id, retired_at__isnull=True).update(
            retired_at=timezone.now()
        )
        return _create(tenant_id)


def signing_keys(tenant: TenantRef) -> list[SigningKey]:
    """Every key the tenant ever signed with, newest first (what is published)."""
    tenant_id = _tenant(tenant)
    with tenant_context(tenant_id):
        return list(SigningKey.objects.filter(tenant_id=tenant_id))


def _private(key: SigningKey) -> Ed25519PrivateKey:
    raw = envelope.decrypt(
        key.tenant_id, bytes(key.wrapped_key), signing_key_aad(key.tenant_id, key.fingerprint)
    )
    return Ed25519PrivateKey.from_private_bytes(raw)


def sign(tenant: TenantRef, message: bytes) -> tuple[str, str]:
    """(signature hex, key id) with the tenant's current key."""
    return sign_with(signing_key_current(tenant), message)


def sign_with(key: SigningKey, message: bytes) -> tuple[str, str]:
    with tenant_context(key.tenant_id):
        return _private(key).sign(message).hex(), key.key_id


def signature_ok(tenant: TenantRef, message: bytes, signature: str, key_id: str | None) -> bool:
    """On the platform: the named key of this tenant made this signature over this message."""
    public = platform_public_key(tenant, key_id)
    return public is not None and public_key_verifies(public, message, signature)


def platform_public_key(tenant: TenantRef, key_id: str | None) -> str | None:
    """The public key (hex) of this tenant's named key, recomputed from its sealed private key (a
    database row cannot vouch for it); None when there is no such key or it no longer opens."""
    if not key_id or not key_id.startswith(KEY_ID_PREFIX):
        return None
    tenant_id = _tenant(tenant)
    with tenant_context(tenant_id):
        key = SigningKey.objects.filter(
            tenant_id=tenant_id, fingerprint=key_id.removeprefix(KEY_ID_PREFIX)
        ).first()
        if key is None:
            return None
        try:
            return _private(key).public_key().public_bytes_raw().hex()
        except DecryptionError:
            return None


def public_key_pem(key: SigningKey) -> str:
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.public_key))
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """A published key as 64 hex digits or PEM text; ValueError for anything else."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        loaded = serialization.load_pem_public_key(text.encode())
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return loaded
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


def public_key_verifies(public_key: str, message: bytes, signature: str) -> bool:
    """Anywhere, with only the published key."""
    try:
        return _verifies(load_public_key(public_key), message, signature)
    except ValueError:
        return False


def _verifies(public: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        public.verify(bytes.fromhex(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True

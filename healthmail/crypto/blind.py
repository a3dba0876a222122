"""Blind indexes and tokens: find and group PHI without decrypting it.

- `blind_index(tenant, kind, value)`: HMAC-SHA256 under the tenant's index key over the normalized
  value, for equality lookups and dedupe (email, phone, external id). 32 bytes, stored as bytea.
- `token(tenant, kind, code)`: the first 64 bits of the same HMAC as a signed bigint, for segmentable
  codes (conditions, medications, tags) kept in an indexed array column.
Different kinds never collide (the kind is part of the MAC input) and different tenants never share
values (each tenant has its own index key), so an index reveals nothing across tenants.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
import uuid

from . import keys

INDEX = "index"
INDEX_KEY_VERSION = 1  # index keys are not rotated in place: re-indexing is a re-import


_CODE_KINDS = frozenset({"code", "tag", "condition", "medication", "procedure", "lab", "vaccine"})
_NON_DIGITS = re.compile(r"\D")


def _tenant_id(tenant: keys.TenantRef) -> uuid.UUID:
    value = getattr(tenant, "pk", tenant)
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _index_key(tenant_id: uuid.UUID) -> bytes:
    keys.current_version(tenant_id, INDEX)  # creates the index key on first use
    return keys.key_bytes(tenant_id, INDEX, INDEX_KEY_VERSION)  # cached, checked as live (keys.py)


def normalize(kind: str, value: str) -> str:
    value = str(value)
    if not value.isascii():  # NFKC leaves ASCII text as it is
        value = unicodedata.normalize("NFKC", value)
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        digits = _NON_DIGITS.sub("", value)
        return digits[-10:] if len(digits) == 11 and digits.startswith("1") else digits
    if kind in _CODE_KINDS:
        return value.upper().replace(" ", "")
    return value.casefold()


def _mac(tenant: keys.TenantRef, kind: str, value: str) -> bytes:
    # One call into OpenSSL's HMAC (hmac.digest) instead of copying a keyed HMAC object per value.
    message = f"{kind}\x00{normalize(kind, value)}".encode()
    return hmac.digest(_index_key(_tenant_id(tenant)), message, "sha256")


def blind_index(tenant: keys.TenantRef, kind: str, value: str) -> bytes:
    return _mac(tenant, kind, value)


def token(tenant: keys.TenantRef, kind: str, code: str) -> int:
    return int.from_bytes(_mac(tenant, kind, code)[:8], "big", signed=True)

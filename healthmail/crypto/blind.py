"""Blind indexes and tokens: find and group PHI without decrypting it.

- `blind_index(tenant, kind, value)`: HMAC-SHA256 under the tenant's index key over the normalized
  value, for equality lookups and dedupe (email, phone, external id). 32 bytes, stored as bytea.
- `token(tenant, kind, code)`: the first 64 bits of the same HMAC as a signed bigint, for segmentable
  codes (conditions, medications, tags) kept in an indexed array column.
Different kinds never collide (the kind is part of the MAC input) and different tenants never share
values (each tenant has its own index key), so an index reveals nothing across tenants.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
import unicodedata
import uuid

from . import keys

INDEX = "index"
INDEX_KEY_VERSION = 1  # index keys are not rotated in place: re-indexing is a re-import


_CODE_KINDS = frozenset({"code", "tag", "condition", "medication", "procedure", "lab", "vaccine"})
_keyed: dict[uuid.UUID, hmac.HMAC] = {}  # an HMAC with the tenant's index key loaded, copied per use


def _tenant_id(tenant) -> uuid.UUID:
    value = getattr(tenant, "pk", tenant)
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _keyed_hmac(tenant_id: uuid.UUID) -> hmac.HMAC:
    # Index keys never change in place (INDEX_KEY_VERSION), so the loaded HMAC can be kept.
    keyed = _keyed.get(tenant_id)
    if keyed is None:
        keys.current_version(tenant_id, INDEX)  # creates the index key on first use
        keyed = hmac.new(keys.key_bytes(tenant_id, INDEX, INDEX_KEY_VERSION), digestmod=hashlib.sha256)
        _keyed[tenant_id] = keyed
    return keyed


def normalize(kind: str, value: str) -> str:
    value = unicodedata.normalize("NFKC", str(value)).strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        digits = re.sub(r"\D", "", value)
        return digits[-10:] if len(digits) == 11 and digits.startswith("1") else digits
    if kind in _CODE_KINDS:
        return value.upper().replace(" ", "")
    return value.casefold()


def _mac(tenant, kind: str, value: str) -> bytes:
    mac = _keyed_hmac(_tenant_id(tenant)).copy()
    mac.update(f"{kind}\x00{normalize(kind, value)}".encode())
    return mac.digest()


def blind_index(tenant, kind: str, value: str) -> bytes:
    return _mac(tenant, kind, value)


def token(tenant, kind: str, code: str) -> int:
    return struct.unpack(">q", _mac(tenant, kind, code)[:8])[0]

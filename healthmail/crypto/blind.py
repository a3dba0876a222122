"""Blind indexes and tokens: find and group PHI without decrypting it.

- `blind_index(tenant, kind, value)`: HMAC-SHA256 under the tenant's index key over the normalized
  value, for equality lookups and dedupe (email, phone, external id). 32 bytes, stored as bytea.
  Written values use this; a lookup uses `lookup(tenant, kind, value)`, which gives every index the
  value may be stored under (two while an index-key rotation runs).
- `token(tenant, kind, code)`: the first 64 bits of the same HMAC as a signed bigint, for segmentable
  codes (conditions, medications, tags) kept in an indexed array column.
Different kinds never collide (the kind is part of the MAC input) and different tenants never share
values (each tenant has its own index key), so an index reveals nothing across tenants.

Index keys rotate (index_rotation.py) for the kind families an app registers a re-indexer for
(contacts: phone, external ids): a new version is first looked up only ("pending"), then written
("active") while the re-indexer moves every row to it, then the older version is retired (no
longer looked up) and destroyed. Every other kind stays under version 1, which is never destroyed:
email indexes are compared across tables in SQL (suppressions, messages, contacts), some holders
keep only the index (address-only suppressions, FHIR request identifiers) and tags exist only as
tokens, so none of them could be recomputed under a new key. Which versions a tenant writes and
looks up is re-read every keys.CURRENT_TTL seconds; rotation waits that long between its steps.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass

from healthmail.tenants.context import tenant_context

from . import keys
from .errors import DecryptionError
from .models import TenantKey

INDEX = "index"
BASE_VERSION = 1  # kinds that are never re-indexed (and tokens) stay under the first index key
_rotating: set[str] = set()  # kind families with a registered re-indexer (index_rotation.py)

_CODE_KINDS = frozenset({"code", "tag", "condition", "medication", "procedure", "lab", "vaccine"})
_NON_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class IndexVersions:
    write: int  # the version new rows of rotating kinds are indexed under
    lookup: tuple[int, ...]  # every version a rotating kind's row may be stored under, newest first

    @property
    def reindexing(self) -> bool:
        return len(self.lookup) > 1


_lock = threading.Lock()
_versions: dict[uuid.UUID, tuple[IndexVersions, float]] = {}


def _tenant_id(tenant: keys.TenantRef) -> uuid.UUID:
    value = getattr(tenant, "pk", tenant)
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def family(kind: str) -> str:
    return kind.partition(":")[0]


def rotating_register(*families: str) -> None:
    _rotating.update(families)


def rotates(kind: str) -> bool:
    return family(kind) in _rotating


def versions(tenant: keys.TenantRef) -> IndexVersions:
    tenant_id = _tenant_id(tenant)
    cached = _versions.get(tenant_id)
    if cached and time.monotonic() - cached[1] < keys.CURRENT_TTL:
        return cached[0]
    keys.current_version(tenant_id, INDEX)  # creates the index key on first use
    with tenant_context(tenant_id):
        rows = list(
            TenantKey.objects.filter(tenant_id=tenant_id, purpose=INDEX).values_list(
                "version", "lookup_state"
            )
        )
    active = [v for v, state in rows if state == TenantKey.LookupState.ACTIVE]
    looked_up = sorted((v for v, state in rows if state != TenantKey.LookupState.RETIRED), reverse=True)
    found = IndexVersions(max(active, default=BASE_VERSION), tuple(looked_up) or (BASE_VERSION,))
    with _lock:
        _versions[tenant_id] = (found, time.monotonic())
    return found


def forget_versions(tenant_id: uuid.UUID | None = None) -> None:
    with _lock:
        if tenant_id is None:
            _versions.clear()
        else:
            _versions.pop(tenant_id, None)


def _index_key(tenant_id: uuid.UUID, version: int) -> bytes:
    if version == BASE_VERSION:
        keys.current_version(tenant_id, INDEX)  # creates the index key on first use
    return keys.key_bytes(tenant_id, INDEX, version)  # cached, checked as live (keys.py)


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


def _mac(tenant_id: uuid.UUID, kind: str, value: str, version: int) -> bytes:
    # One call into OpenSSL's HMAC (hmac.digest) instead of copying a keyed HMAC object per value.
    message = f"{kind}\x00{normalize(kind, value)}".encode()
    return hmac.digest(_index_key(tenant_id, version), message, "sha256")


def blind_index(tenant: keys.TenantRef, kind: str, value: str) -> bytes:
    """The index to store for a value (the version being written)."""
    tenant_id = _tenant_id(tenant)
    version = versions(tenant_id).write if rotates(kind) else BASE_VERSION
    return _mac(tenant_id, kind, value, version)


def lookup(tenant: keys.TenantRef, kind: str, value: str) -> list[bytes]:
    """Every index a stored row of this value may hold: one, or two while an index-key rotation
    runs. A version destroyed meanwhile (this process's view was stale) is left out."""
    tenant_id = _tenant_id(tenant)
    if not rotates(kind):
        return [_mac(tenant_id, kind, value, BASE_VERSION)]
    found = []
    for version in versions(tenant_id).lookup:
        try:
            found.append(_mac(tenant_id, kind, value, version))
        except DecryptionError:
            forget_versions(tenant_id)
    if not found:
        raise DecryptionError("No index key of this tenant is live.")
    return found


def token(tenant: keys.TenantRef, kind: str, code: str) -> int:
    return int.from_bytes(_mac(_tenant_id(tenant), kind, code, BASE_VERSION)[:8], "big", signed=True)

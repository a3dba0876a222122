"""Blind indexes and tokens: find and group PHI without decrypting it.

- `blind_index(tenant, kind, value)`: HMAC-SHA256 under the tenant's index key over the normalized
  value, for equality lookups and dedupe (email, phone, external id). 32 bytes, stored as bytea.
  Written values use this; a lookup uses `lookup(tenant, kind, value)`, which gives every index the
  value may be stored under (two while an index-key rotation runs).
- `token(tenant, kind, code)`: the first 64 bits of the same HMAC as a signed bigint, for segmentable
  codes (conditions, medications, tags) kept in an indexed array column. A row may hold tokens under
  either of two versions while a rotation runs: a comparison asks for `token_lookup` (every token a
  row holding the code may hold), never for `token` alone.
Different kinds never collide (the kind is part of the MAC input) and different tenants never share
values (each tenant has its own index key), so an index reveals nothing across tenants.

Index keys rotate (index_rotation.py) for the kind families an app registers a re-indexer for
(contacts: phone, external ids, and the clinical and demographic tokens segmentation matches,
recomputed from the sealed values): a new version is first looked up only ("pending"), then written
("active") while the re-indexer moves every row to it, then the older version is retired (no
longer looked up) and destroyed.

Chained kinds (email, FHIR request identifiers, tags: registered by the apps holding them) cannot
be recomputed from a value: some holders keep only the index (address-only suppressions, request
identifiers, tags) and SQL compares them across tables (a suppression's index with a contact's). So
their index under version n is the one under the version before, keyed again with the "chain" key
of version n: index_n = HMAC(chain_n, family | index_(n-1)), from index_1 = HMAC(index key v1, value).
A stored index moves to the new version without its value, and one leaked key alone opens none of
them; chain keys are never destroyed (their index-key versions may be). While the new version is
pending, holders keep the index under the old version and fill in its successor in a "next" column
(written by every writer, filled for older rows by the rotation); once it is active, the rotation
swaps the next index in. A comparison between two stored rows therefore matches either's index
with the other's index or next index, in both directions and whatever the comparing process's view
of the stage, and a lookup by value asks for the index under each looked-up version.

Which versions a tenant writes and looks up is re-read every keys.CURRENT_TTL seconds; rotation
waits that long between its steps. A write computes a row's index and next index from ONE view of
the stage (`blind_index_pair`, or the `state` argument): two reads may straddle a step.
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
CHAIN = "chain"  # the keys re-keying chained kinds' stored indexes, one per index-key version > 1
BASE_VERSION = 1  # kinds neither re-indexed nor chained stay under the first index key
_rotating: set[str] = set()  # kind families with a registered re-indexer (index_rotation.py)
_chained: set[str] = set()  # kind families whose stored indexes are re-keyed (index_rotation.py)

_CODE_KINDS = frozenset({"code", "tag", "condition", "medication", "procedure", "lab", "vaccine"})
_NON_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class IndexVersions:
    write: int  # the version new rows of rotating kinds are indexed under
    lookup: tuple[int, ...]  # every version a rotating kind's row may be stored under, newest first
    chain: tuple[int, ...] = ()  # the chain-key versions, oldest first

    @property
    def reindexing(self) -> bool:
        return len(self.lookup) > 1

    @property
    def pending(self) -> int | None:
        """The version looked up but not yet written (chained kinds fill in its "next" index)."""
        return self.lookup[0] if self.lookup[0] > self.write else None

    @property
    def dual_compare(self) -> bool:
        """Stored chained indexes may be under either of two versions (the soft-bounce streak then
        also scans the messages' unindexed next column; SQL comparisons between rows always match
        both columns, consent/gate.py)."""
        return self.reindexing


_lock = threading.Lock()
_versions: dict[uuid.UUID, tuple[IndexVersions, float]] = {}
# Bumped by every forget: a view read before a forget is not stored after it (a thread slow
# between its query and the store would otherwise keep a stale view for keys.CURRENT_TTL).
_generation = [0]


def _tenant_id(tenant: keys.TenantRef) -> uuid.UUID:
    value = getattr(tenant, "pk", tenant)
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def family(kind: str) -> str:
    """What a kind belongs to: the part before ":" or "." (external_id:mrn, custom.plan)."""
    return kind.partition(":")[0].partition(".")[0]


def rotating_register(*families: str) -> None:
    _rotating.update(families)


def rotates(kind: str) -> bool:
    return family(kind) in _rotating


def chained_register(*families: str) -> None:
    _chained.update(families)


def chained(kind: str) -> bool:
    return family(kind) in _chained


def versions(tenant: keys.TenantRef) -> IndexVersions:
    tenant_id = _tenant_id(tenant)
    cached = _versions.get(tenant_id)
    if cached and time.monotonic() - cached[1] < keys.CURRENT_TTL:
        return cached[0]
    keys.current_version(tenant_id, INDEX)  # creates the index key on first use
    generation = _generation[0]
    with tenant_context(tenant_id):
        rows = list(
            TenantKey.objects.filter(tenant_id=tenant_id, purpose__in=[INDEX, CHAIN]).values_list(
                "purpose", "version", "lookup_state"
            )
        )
    chain = tuple(sorted(v for purpose, v, _ in rows if purpose == CHAIN))
    index_rows = [(v, state) for purpose, v, state in rows if purpose == INDEX]
    active = [v for v, state in index_rows if state == TenantKey.LookupState.ACTIVE]
    looked_up = sorted((v for v, state in index_rows if state != TenantKey.LookupState.RETIRED), reverse=True)
    found = IndexVersions(max(active, default=BASE_VERSION), tuple(looked_up) or (BASE_VERSION,), chain)
    with _lock:
        if generation == _generation[0]:
            _versions[tenant_id] = (found, time.monotonic())
    return found


def forget_versions(tenant_id: uuid.UUID | None = None) -> None:
    with _lock:
        _generation[0] += 1
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


def chain_step(tenant_id: uuid.UUID, kind: str, version: int, index: bytes) -> bytes:
    """A chained kind's stored index under `version`, from its index under the version before."""
    message = family(kind).encode() + b"\x00" + index
    return hmac.digest(keys.key_bytes(tenant_id, CHAIN, version), message, "sha256")


def token_step(tenant_id: uuid.UUID, kind: str, version: int, token_: int) -> int:
    step = chain_step(tenant_id, kind, version, token_.to_bytes(8, "big", signed=True))
    return int.from_bytes(step[:8], "big", signed=True)


def _chained_mac(tenant_id: uuid.UUID, kind: str, value: str, version: int, state: IndexVersions) -> bytes:
    index = _mac(tenant_id, kind, value, BASE_VERSION)
    for link in state.chain:
        if link <= version:
            index = chain_step(tenant_id, kind, link, index)
    return index


def blind_index(
    tenant: keys.TenantRef, kind: str, value: str, *, state: IndexVersions | None = None
) -> bytes:
    """The index to store for a value (the version being written). A write storing a chained
    kind's next index too passes the same `state` to both (or uses `blind_index_pair`)."""
    tenant_id = _tenant_id(tenant)
    if chained(kind):
        state = state or versions(tenant_id)
        return _chained_mac(tenant_id, kind, value, state.write, state)
    version = (state or versions(tenant_id)).write if rotates(kind) else BASE_VERSION
    return _mac(tenant_id, kind, value, version)


def blind_index_next(
    tenant: keys.TenantRef, kind: str, value: str, *, state: IndexVersions | None = None
) -> bytes | None:
    """A chained kind's index under the pending version, stored beside `blind_index` while a
    rotation fills it in; None otherwise."""
    tenant_id = _tenant_id(tenant)
    if not chained(kind):
        return None
    state = state or versions(tenant_id)
    if state.pending is None:
        return None
    return _chained_mac(tenant_id, kind, value, state.pending, state)


def blind_index_pair(
    tenant: keys.TenantRef, kind: str, value: str, *, state: IndexVersions | None = None
) -> tuple[bytes, bytes | None]:
    """(index, next index) to store for a value, both from ONE view of the rotation's stage.

    Two separate reads of the stage may straddle a step of the rotation: the index read while the
    new version was pending (the old index) and the next index read once it is active (none) make
    a row holding the old index alone after the fill has passed, which no stored comparison of
    another row holding the new index alone can match (index_rotation.py)."""
    state = state or versions(_tenant_id(tenant))
    return (
        blind_index(tenant, kind, value, state=state),
        blind_index_next(tenant, kind, value, state=state),
    )


def copied(
    tenant: keys.TenantRef,
    kind: str,
    index: bytes | memoryview | None,
    next_index: bytes | memoryview | None,
    *,
    state: IndexVersions | None = None,
) -> tuple[bytes | None, bytes | None]:
    """(index, next index) to store in a row copying another row's: while the new version is
    pending, the old index with its next one; otherwise the newest the row holds alone (a copy
    of a row not yet swapped must not bring the old index past the swap)."""
    tenant_id = _tenant_id(tenant)
    if index is None:
        return None, None
    index, following = bytes(index), bytes(next_index) if next_index is not None else None
    if not chained(kind):
        return index, None
    pending = (state or versions(tenant_id)).pending
    if pending is None:
        return following or index, None
    return index, following or chain_step(tenant_id, kind, pending, index)


def candidates(tenant: keys.TenantRef, kind: str, *indexes: bytes | memoryview | None) -> list[bytes]:
    """Every index a stored row of the same value may hold, given indexes stored in one row (its
    index and next index): while a rotation runs, each with its successor under the newest version
    (a successor of an index already under it is a random value that matches nothing). What a
    comparison between two stored rows matches against both columns of the other: it needs no
    value and does not depend on the other row having its next index."""
    tenant_id = _tenant_id(tenant)
    found = [bytes(index) for index in indexes if index is not None]
    if found and chained(kind):
        state = versions(tenant_id)
        if state.reindexing:
            newest, oldest = state.lookup[0], state.lookup[-1]
            links = [link for link in state.chain if oldest < link <= newest]
            for index in list(found):
                for link in links:
                    index = chain_step(tenant_id, kind, link, index)
                found.append(index)
    return list(dict.fromkeys(found))


def lookup(tenant: keys.TenantRef, kind: str, value: str) -> list[bytes]:
    """Every index a stored row of this value may hold: one, or two while an index-key rotation
    runs. A version destroyed meanwhile (this process's view was stale) is left out."""
    tenant_id = _tenant_id(tenant)
    if chained(kind):
        state = versions(tenant_id)
        return list(dict.fromkeys(_chained_mac(tenant_id, kind, value, v, state) for v in state.lookup))
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


def _chained_token(tenant_id: uuid.UUID, kind: str, code: str, version: int, state: IndexVersions) -> int:
    found = int.from_bytes(_mac(tenant_id, kind, code, BASE_VERSION)[:8], "big", signed=True)
    for link in state.chain:
        if link <= version:
            found = token_step(tenant_id, kind, link, found)
    return found


def _token(tenant_id: uuid.UUID, kind: str, code: str, version: int) -> int:
    return int.from_bytes(_mac(tenant_id, kind, code, version)[:8], "big", signed=True)


def token(tenant: keys.TenantRef, kind: str, code: str, *, state: IndexVersions | None = None) -> int:
    """The token to store for a code, under the version being written (rotating and chained kinds).
    A write storing several tokens of one row passes the same `state` to each."""
    tenant_id = _tenant_id(tenant)
    if chained(kind):
        state = state or versions(tenant_id)
        return _chained_token(tenant_id, kind, code, state.write, state)
    version = (state or versions(tenant_id)).write if rotates(kind) else BASE_VERSION
    return _token(tenant_id, kind, code, version)


def token_next(
    tenant: keys.TenantRef, kind: str, code: str, *, state: IndexVersions | None = None
) -> int | None:
    """A chained kind's token under the pending version (None otherwise); pass the `state` the
    row's `token` was computed with (see `blind_index_pair`)."""
    tenant_id = _tenant_id(tenant)
    if not chained(kind):
        return None
    state = state or versions(tenant_id)
    if state.pending is None:
        return None
    return _chained_token(tenant_id, kind, code, state.pending, state)


def token_lookup(tenant: keys.TenantRef, kind: str, code: str) -> list[int]:
    """Every token a stored row of this code may hold (two while a rotation runs). A version
    destroyed meanwhile (this process's view was stale) is left out, as in `lookup`."""
    tenant_id = _tenant_id(tenant)
    if chained(kind):
        state = versions(tenant_id)
        return list(dict.fromkeys(_chained_token(tenant_id, kind, code, v, state) for v in state.lookup))
    if not rotates(kind):
        return [_token(tenant_id, kind, code, BASE_VERSION)]
    found = []
    for version in versions(tenant_id).lookup:
        try:
            found.append(_token(tenant_id, kind, code, version))
        except DecryptionError:
            forget_versions(tenant_id)
    if not found:
        raise DecryptionError("No index key of this tenant is live.")
    return found

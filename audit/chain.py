"""The hash chain over audit events, its sealer, signed checkpoints and verification.

Writers only INSERT; a sealer links new rows of each tenant in batches (so writers never wait on a
lock): seq = previous + 1, hash = SHA-256(previous hash, canonical JSON of the row). Chain heads are
signed and appended to files outside the database (settings.AUDIT_CHECKPOINT_DIR), so deleting the
newest rows is detected too. A tenant's heads are signed with the tenant's published Ed25519 key
(healthmail/crypto/signing.py), so an outside auditor can check them; the platform chain's with a key
derived from the master key.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone

from healthmail.crypto import signing
from healthmail.crypto.master import key_ring
from healthmail.tenants.context import platform_context, tenant_context
from healthmail.tenants.models import Tenant

from . import key_history
from .alerts import alert_chain_broken
from .models import AuditEvent, ChainHead, ChainVerification

GENESIS = "0" * 64
SEAL_BATCH = 5000
CHAINED_FIELDS = (
    "id",
    "tenant_id",
    "seq",
    "occurred_at",
    "actor_type",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "reason",
    "details",
    "request_id",
    "ip_address",
    "contact_ids",
)
SIGNING_PURPOSE = "healthmail audit checkpoint signing"


def canonical(row: dict) -> bytes:
    values = {name: row[name] for name in CHAINED_FIELDS if name != "contact_ids"}
    values["tenant_id"] = str(values["tenant_id"]) if values["tenant_id"] else None
    # Rows that concern no contact hash exactly as before the column existed (old chains still
    # verify); any contact listed, added or removed changes the hash.
    contact_ids = sorted(str(c) for c in row.get("contact_ids") or ())
    if contact_ids:
        values["contact_ids"] = contact_ids
    values["occurred_at"] = values["occurred_at"].astimezone(datetime.UTC).isoformat()
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(previous_hash: str, row: dict) -> str:
    return hashlib.sha256(previous_hash.encode() + b"\n" + canonical(row)).hexdigest()


def chain_scope(tenant_id: uuid.UUID | None) -> AbstractContextManager:
    return tenant_context(tenant_id) if tenant_id else platform_context()


def chain_ids() -> Iterator[uuid.UUID | None]:
    """Every chain: one per tenant, plus the platform chain (None)."""
    yield None
    yield from Tenant.objects.order_by("created_at").values_list("pk", flat=True)


# --- Sealing -----------------------------------------------------------------------------------------


def _tail_problem(tenant_id: uuid.UUID | None, head: ChainHead) -> str:
    """Whether the newest sealed row still is what the head says: a cheap check on every sealing
    batch (the full recomputation is audit_verify's), catching an edited or deleted newest row."""
    if head.seq == 0:
        return ""
    rows = list(
        AuditEvent.objects.filter(tenant=tenant_id, seq__in=[head.seq - 1, head.seq])
        .order_by("seq")
        .values(*CHAINED_FIELDS, "hash")
    )
    if not rows or rows[-1]["seq"] != head.seq:
        return f"seq {head.seq}: the newest sealed row is missing (found by the sealer)"
    tail = rows[-1]
    if head.seq > 1 and rows[0]["seq"] != head.seq - 1:
        return f"seq {head.seq - 1}: row missing (found by the sealer)"
    previous = rows[0]["hash"] if head.seq > 1 else GENESIS
    if tail["hash"] != head.hash or link(previous, tail) != tail["hash"]:
        return f"seq {head.seq} (row id {tail['id']}): content does not match its hash (found by the sealer)"
    return ""


def seal_pending(tenant_id: uuid.UUID | None, *, batch: int = SEAL_BATCH) -> int:
    """Link up to `batch` unsealed rows of one chain. Returns how many were sealed.

    Sealing goes on after a break (writers must not pile up), but the break raises a critical alert."""
    with chain_scope(tenant_id), transaction.atomic():
        # tenant_id None is the platform chain; django-stubs refuses None for a nullable key's
        # `_id` (typeddjango/django-stubs#3472), and `tenant=` would not create the row from an id.
        head, _ = ChainHead.objects.select_for_update().get_or_create(tenant_id=tenant_id)  # type: ignore[misc]
        rows = list(
            AuditEvent.objects.filter(tenant=tenant_id, seq__isnull=True)
            .order_by("id")
            .values(*CHAINED_FIELDS)[:batch]
        )
        if not rows:
            return 0
        problem = _tail_problem(tenant_id, head)
        sealed = _seal_rows(head, rows)
    if problem:
        alert_chain_broken(tenant_id=tenant_id, problem=problem, found_by="sealer")
    return sealed


def _seal_rows(head: ChainHead, rows: list[dict]) -> int:
    """Link `rows` after the head (the caller holds the head's lock) and move the head."""
    previous, seq = head.hash or GENESIS, head.seq
    sealed = []
    for row in rows:
        seq += 1
        row["seq"] = seq
        previous = link(previous, row)
        sealed.append((row["id"], seq, previous))
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent AS e SET seq = v.seq, hash = v.hash, sealed_at = %s "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS v(id, seq, hash) WHERE e.id = v.id",
            [now, [s[0] for s in sealed], [s[1] for s in sealed], [s[2] for s in sealed]],
        )
    head.seq, head.hash = seq, previous
    head.save(update_fields=["seq", "hash", "updated_at"])
    return len(sealed)


def seal_all() -> int:
    total = 0
    for tenant_id in chain_ids():
        while (count := seal_pending(tenant_id)) > 0:
            total += count
    return total


# --- Signed checkpoints outside the database ------------------------------------------------------------


def _signing_key(key_id: str | None = None) -> tuple[str, Ed25519PrivateKey]:
    ring = key_ring()
    key_id = key_id or ring.current_id
    return key_id, Ed25519PrivateKey.from_private_bytes(ring.derive(SIGNING_PURPOSE, key_id))


def sign(message: bytes, *, tenant_id=None) -> tuple[str, str]:
    """Ed25519 signature (hex) and its key id: the tenant's published key, or (no tenant: the platform
    chain) the key derived from the current master key."""
    if tenant_id is not None:
        return signing.sign(tenant_id, message)
    key_id, private_key = _signing_key()
    return private_key.sign(message).hex(), key_id


def signature_ok(message: bytes, signature: str, key_id: str | None, *, tenant_id=None) -> bool:
    """Made by the named key: a tenant's (key ids "ed25519:…") or one derived from a master key
    (signatures made before tenants had keys of their own, and the platform chain's). Checked, as
    checkpoints are, with the key published in the key history, else the one the platform
    recomputes; both known and different fails. So certificates, packages and exports signed with
    a master key removed after a rotation still verify (issue 25)."""
    published = key_history.published_key(
        key_history.history_read(), key_id, str(tenant_id) if tenant_id is not None else "platform"
    )
    platform = platform_public_key(tenant_id, key_id)
    if published and platform and published != platform:
        return False
    public = published or platform
    return public is not None and signing.public_key_verifies(public, message, signature)


def platform_public_key(tenant_id, key_id: str | None) -> str | None:
    """The public key (hex) the platform itself vouches for: a tenant's recomputed from its sealed
    private key, or one derived from a master key still in the ring; else None."""
    if key_id and key_id.startswith(signing.KEY_ID_PREFIX):
        return signing.platform_public_key(tenant_id, key_id) if tenant_id is not None else None
    try:
        _, private_key = _signing_key(key_id)
    except ImproperlyConfigured:
        return None
    return private_key.public_key().public_bytes_raw().hex()


def checkpoint_path(tenant_id: uuid.UUID | None) -> Path:
    return Path(settings.AUDIT_CHECKPOINT_DIR) / f"{tenant_id or 'platform'}.jsonl"


def _checkpoint_message(entry: dict) -> bytes:
    return f"{entry['chain']}|{entry['seq']}|{entry['hash']}|{entry['at']}".encode()


def checkpoint_export() -> int:
    """Append each chain's signed head to its checkpoint file when it moved. Returns files written."""
    master_keys_publish()
    written = 0
    for tenant_id in chain_ids():
        with chain_scope(tenant_id):
            head = ChainHead.objects.filter(tenant=tenant_id).first()
        if head is None or head.seq == 0:
            continue
        latest = latest_checkpoint(tenant_id)
        if latest and latest["seq"] == head.seq:
            continue
        _checkpoint_append(tenant_id, _checkpoint_entry(tenant_id, head))
        written += 1
    return written


def master_keys_publish() -> None:
    """Every master key in the ring has its derived checkpoint key in the published history, so a
    key removed later (after a master-key rotation) still checks what it signed."""
    history = key_history.history_read()
    for key_id in key_ring().ids:
        _, private_key = _signing_key(key_id)
        public = private_key.public_key().public_bytes_raw().hex()
        key_history.key_publish(key_id=key_id, scope=key_history.PLATFORM, public_key=public, history=history)


def checkpoints_read(tenant_id: uuid.UUID | None) -> tuple[list[dict], list[str]]:
    """Every checkpoint line of a chain that verifies, and a problem for each that does not."""
    path = checkpoint_path(tenant_id)
    if not path.exists():
        return [], []
    history = key_history.history_read()
    platform_keys: dict[str | None, str | None] = {}
    valid, problems = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        problem = "not a checkpoint"
        if isinstance(entry, dict):
            problem = checkpoint_problem(entry, history=history, platform_keys=platform_keys)
        if problem:
            problems.append(f"checkpoint line {number} of {path.name}: {problem}")
        else:
            valid.append(entry)
    return valid, problems


def latest_checkpoint(tenant_id: uuid.UUID | None) -> dict | None:
    """The newest checkpoint whose signature verifies (verify_chain reports the others)."""
    valid, _problems = checkpoints_read(tenant_id)
    return max(valid, key=lambda entry: entry["seq"], default=None)


def checkpoint_problem(
    entry: dict,
    *,
    history: key_history.History | None = None,
    platform_keys: dict[str | None, str | None] | None = None,
) -> str:
    """Why a checkpoint cannot be trusted ("" when it verifies). Checked with the key published in
    the history, else the one the platform recomputes; both known and different is a problem too."""
    try:
        message = _checkpoint_message(entry)
    except KeyError:
        return "a field is missing"
    chain_name, key_id = str(entry.get("chain")), entry.get("key_id")
    published = key_history.published_key(
        key_history.history_read() if history is None else history, key_id, chain_name
    )
    platform_keys = {} if platform_keys is None else platform_keys  # one lookup per key, not per line
    if key_id not in platform_keys:
        platform_keys[key_id] = platform_public_key(None if chain_name == "platform" else chain_name, key_id)
    platform = platform_keys[key_id]
    if published and platform and published != platform:
        return f"key {key_id} differs from the key published for it"
    public = published or platform
    if public is None:
        return f"cannot be verified: key {key_id} is neither published nor available"
    if not signing.public_key_verifies(public, message, entry.get("signature", "")):
        return f"signature does not verify with key {key_id}"
    return ""


def checkpoint_signature_ok(entry: dict) -> bool:
    return not checkpoint_problem(entry)


# --- Verification -------------------------------------------------------------------------------------------


@dataclass
class ChainReport:
    chain: str
    rows: int = 0
    unsealed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_and_alert(tenant_id: uuid.UUID | None, *, found_by: str) -> ChainReport:
    """verify_chain, and a critical alert to the tenant's compliance officers when it is broken."""
    report = verify_chain(tenant_id)
    if not report.ok:
        alert_chain_broken(tenant_id=tenant_id, problem=report.problems[0], found_by=found_by)
    return report


def verification_record(tenant_id: uuid.UUID | None, *, found_by: str) -> ChainReport:
    """verify_and_alert, and the result recorded for the status banner: the one place a verification
    is recorded, whoever asked for it (an officer's page, the hourly task, `manage.py audit_verify`)."""
    report = verify_and_alert(tenant_id, found_by=found_by)
    with chain_scope(tenant_id):
        ChainVerification.objects.create(
            tenant_id=tenant_id, ok=report.ok, rows=report.rows, problem=(report.problems or [""])[0][:500]
        )
    return report


def verify_chain(tenant_id: uuid.UUID | None) -> ChainReport:
    """Recompute one chain from its start; name the first broken, missing or reordered row."""
    report = ChainReport(str(tenant_id or "platform"))
    checkpoints, checkpoint_problems = checkpoints_read(tenant_id)
    signed: dict[int, dict] = {}
    for entry in checkpoints:
        if signed.setdefault(entry["seq"], entry)["hash"] != entry["hash"]:
            checkpoint_problems.append(f"seq {entry['seq']}: two signed checkpoints name different hashes")
    previous, expected_seq = GENESIS, 1
    with chain_scope(tenant_id), transaction.atomic():
        rows = (
            AuditEvent.objects.filter(tenant=tenant_id, seq__isnull=False)
            .order_by("seq", "id")
            .values(*CHAINED_FIELDS, "hash")
        )
        for row in rows.iterator(chunk_size=5000):
            report.rows += 1
            if report.problems:
                continue
            if row["seq"] != expected_seq:
                kind = "duplicated" if row["seq"] < expected_seq else "missing"
                report.problems.append(
                    f"seq {expected_seq}: row {kind} (found row id {row['id']} with seq {row['seq']})"
                )
                continue
            recomputed = link(previous, row)
            if recomputed != row["hash"]:
                report.problems.append(
                    f"seq {row['seq']} (row id {row['id']}): content does not match its hash "
                    "(edited, reordered or forged)"
                )
                continue
            checkpoint = signed.get(row["seq"])
            if checkpoint is not None and checkpoint["hash"] != row["hash"]:
                report.problems.append(
                    f"seq {row['seq']}: hash differs from the signed checkpoint of {checkpoint['at']}"
                )
                continue
            previous, expected_seq = row["hash"], expected_seq + 1
        report.unsealed = AuditEvent.objects.filter(tenant=tenant_id, seq__isnull=True).count()
    last_seq = expected_seq - 1
    newest = max(checkpoints, key=lambda entry: entry["seq"], default=None)
    if not report.problems and newest is not None and newest["seq"] > last_seq:
        report.problems.append(
            f"seq {last_seq + 1}..{newest['seq']}: rows missing at the end of the chain "
            f"(signed checkpoint of {newest['at']} has seq {newest['seq']})"
        )
    # A checkpoint nobody can verify is never skipped in silence: it may be the one that shows
    # the newest rows were deleted.
    report.problems.extend(checkpoint_problems)
    return report


# --- Proof for a slice of the chain (an evidence package about one patient) -------------------------------


def checkpoint_covering(tenant_id: uuid.UUID | None, seq: int) -> dict | None:
    """The oldest signed checkpoint at or after `seq`. When none has reached it yet, the current
    head is signed now and appended to the checkpoint file once the caller's transaction commits:
    a head written for rows that are then rolled back would later read as tampering."""
    valid, _problems = checkpoints_read(tenant_id)
    covering = [entry for entry in valid if entry["seq"] >= seq]
    if covering:
        return min(covering, key=lambda entry: entry["seq"])
    with chain_scope(tenant_id):
        head = ChainHead.objects.filter(tenant=tenant_id).first()
    if head is None or head.seq < seq:
        return None
    entry = _checkpoint_entry(tenant_id, head)
    transaction.on_commit(lambda: _checkpoint_append(tenant_id, entry))
    return entry


def _checkpoint_entry(tenant_id: uuid.UUID | None, head: ChainHead) -> dict:
    """A signed head: with the tenant's published key (the platform chain: the master-derived key)."""
    entry = {
        "chain": str(tenant_id or "platform"),
        "seq": head.seq,
        "hash": head.hash,
        "at": timezone.now().isoformat(),
    }
    entry["signature"], entry["key_id"] = sign(_checkpoint_message(entry), tenant_id=tenant_id)
    return entry


def _checkpoint_append(tenant_id: uuid.UUID | None, entry: dict) -> None:
    """Publish the key that signed the entry (first), then append the entry."""
    public = platform_public_key(tenant_id, entry["key_id"])
    if public is not None:
        scope = str(tenant_id) if entry["key_id"].startswith(signing.KEY_ID_PREFIX) else key_history.PLATFORM
        key_history.key_publish(key_id=entry["key_id"], scope=scope, public_key=public)
    checkpoint_path(tenant_id).parent.mkdir(parents=True, exist_ok=True)
    with checkpoint_path(tenant_id).open("a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def checkpoint_public_key(tenant_id: uuid.UUID | None, key_id: str | None) -> str | None:
    """The public key a checkpoint names (hex): the tenant's published one, or the derived one."""
    published = key_history.published_key(key_history.history_read(), key_id, str(tenant_id or "platform"))
    return published or platform_public_key(tenant_id, key_id)


def checkpoint_verify_with(entry: dict, public_key: str) -> bool:
    """A checkpoint's signature checked with a published public key alone (no master key)."""
    try:
        message = _checkpoint_message(entry)
    except KeyError:
        return False
    return signing.public_key_verifies(public_key, message, entry.get("signature", ""))

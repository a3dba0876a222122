"""Audit exports that a third party can check offline.

The ZIP holds `events.csv` or `events.json` and `manifest.json`: row count, first/last hash, the
SHA-256 of the data file, an Ed25519 signature over the manifest with the organization's published
key (healthmail/crypto/signing.py, as for chain checkpoints) and that public key. Each exported row
carries its chain hash and the hash before it, so `manage.py audit_verify --export FILE` recomputes
every row's link without the database.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import uuid
import zipfile
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from healthmail import labels
from healthmail.actors import Actor
from healthmail.crypto import signing
from healthmail.spreadsheet import spreadsheet_safe, spreadsheet_value
from healthmail.tenants.context import tenant_context

from . import chain, services
from .models import AuditEvent
from .selectors import EventFilter, event_search

EXPORT_LIMIT = 100_000
# The action's label is for the reader; the hashes cover the chained fields only, the code among them.
COLUMNS = (*chain.CHAINED_FIELDS, "hash", "previous_hash", "action_label")


class ExportError(Exception):
    pass


@dataclass(frozen=True)
class Export:
    filename: str
    content: bytes
    row_count: int


def _cell(value) -> str:
    """A CSV cell: JSON for details and contact lists, safe to open in a spreadsheet (undone by
    `spreadsheet_value` when the file is read back to check its chain)."""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    return spreadsheet_safe(value)


def _rows(tenant, filters: EventFilter) -> list[dict]:
    events = list(
        event_search(tenant=tenant, filters=filters)
        .filter(seq__isnull=False)
        .order_by("seq")
        .values(*chain.CHAINED_FIELDS, "hash")[: EXPORT_LIMIT + 1]
    )
    if len(events) > EXPORT_LIMIT:
        raise ExportError(f"More than {EXPORT_LIMIT:,} events match; narrow the date range.")
    wanted = [e["seq"] - 1 for e in events if e["seq"] > 1]
    previous = dict(AuditEvent.objects.filter(tenant=tenant, seq__in=wanted).values_list("seq", "hash"))
    for event in events:
        event["previous_hash"] = previous.get(event["seq"] - 1, chain.GENESIS)
        event["action_label"] = labels.label("audit_action", event["action"])
    return events


def _serialize(rows: list[dict], fmt: str) -> bytes:
    if fmt == "json":
        clean = [
            json.loads(chain.canonical(row))
            | {key: row[key] for key in ("hash", "previous_hash", "action_label")}
            for row in rows
        ]
        return json.dumps(clean, indent=1, sort_keys=True).encode()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in rows:
        values = json.loads(chain.canonical(row))
        writer.writerow([_cell(values.get(c, row.get(c))) for c in COLUMNS])
    return buffer.getvalue().encode()


def audit_export(*, actor: Actor, tenant, filters: EventFilter, fmt: str) -> Export:
    if fmt not in ("csv", "json"):
        raise ExportError("Choose CSV or JSON.")
    with tenant_context(tenant):
        chain.seal_pending(tenant.pk)
        rows = _rows(tenant, filters)
        data = _serialize(rows, fmt)
        manifest: dict[str, Any] = {
            "tenant": str(tenant.pk),
            "filters": filters.as_details(),
            "generated_at": timezone.now().isoformat(),
            "generated_by": actor.reference,
            "format": fmt,
            "row_count": len(rows),
            "first_seq": rows[0]["seq"] if rows else None,
            "last_seq": rows[-1]["seq"] if rows else None,
            "first_hash": rows[0]["hash"] if rows else None,
            "last_hash": rows[-1]["hash"] if rows else None,
            "data_file": f"events.{fmt}",
            "data_sha256": hashlib.sha256(data).hexdigest(),
        }
        manifest["signature"], manifest["key_id"] = chain.sign(
            json.dumps(manifest, sort_keys=True).encode(), tenant_id=tenant.pk
        )
        # The key to check it with, for convenience: it proves something only when it matches the
        # key the organization publishes (audit page, API).
        manifest["public_key"] = signing.signing_key_current(tenant).public_key
        services.record(
            actor=actor,
            action="audit.export",
            tenant=tenant,
            details={
                "rows": len(rows),
                "format": fmt,
                "data_sha256": manifest["data_sha256"],
                "filters": filters.as_details(),
            },
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(manifest["data_file"], data)
        archive.writestr("manifest.json", json.dumps(manifest, indent=1, sort_keys=True))
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    return Export(f"audit-{tenant.slug}-{stamp}.zip", buffer.getvalue(), len(rows))


def verify_export(content: bytes, *, public_key: str | None = None) -> list[str]:
    """Every problem found in an export file (empty: it verifies). With `public_key` (the published
    one, hex or PEM) anyone can check it; without, the platform checks it with the tenant's key."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        manifest = json.loads(archive.read("manifest.json"))
        data = archive.read(manifest["data_file"])
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        return [f"not an audit export: {error}"]
    problems = []
    signature, key_id = manifest.pop("signature", ""), manifest.pop("key_id", None)
    manifest.pop("public_key", None)
    message = json.dumps(manifest, sort_keys=True).encode()
    if public_key is not None:
        signed = signing.public_key_verifies(public_key, message, signature)
    else:
        signed = chain.signature_ok(message, signature, key_id, tenant_id=manifest.get("tenant"))
    if not signed:
        problems.append("manifest signature does not verify (manifest edited or not ours)")
    if hashlib.sha256(data).hexdigest() != manifest["data_sha256"]:
        problems.append("data file SHA-256 differs from the manifest (file edited)")
    rows = _parse(data, manifest["format"])
    if len(rows) != manifest["row_count"]:
        problems.append(f"row count {len(rows)} differs from the manifest ({manifest['row_count']})")
    for row in rows:
        if chain.link(row["previous_hash"], row) != row["hash"]:
            problems.append(f"seq {row['seq']} (row id {row['id']}): content does not match its hash")
            break
    return problems


def _parse(data: bytes, fmt: str) -> list[dict]:
    if fmt == "json":
        rows = json.loads(data)
    else:
        rows = []
        for record in csv.DictReader(io.StringIO(data.decode())):
            row: dict[str, Any] = {k: spreadsheet_value(v) for k, v in record.items()}
            row["id"], row["seq"] = int(row["id"]), int(row["seq"])
            row["details"] = json.loads(row["details"]) if row["details"] else {}
            row["contact_ids"] = json.loads(row.get("contact_ids") or "[]")
            for key in ("tenant_id", "ip_address"):
                row[key] = row[key] or None
            rows.append(row)
    for row in rows:
        row["occurred_at"] = datetime.datetime.fromisoformat(row["occurred_at"])
    return rows


# --- The chain proof that goes with a slice (an evidence package about some patients) ---------------------

PROOF_NOTE = (
    "Each event's hash is SHA-256(previous_hash, canonical row): recompute it from events.json. "
    "`checkpoint` is the oldest signed chain head at or after the newest event (Ed25519 over "
    "'chain|seq|hash|at', key `public_key`); its seq covers every event here. The events in between "
    "concern other people and are not included: on the platform, `manage.py verify_evidence FILE "
    "--against-chain` checks each hash listed here against the stored chain and `manage.py "
    "audit_verify` recomputes the whole chain up to the signed heads."
)


def _export_rows(content: bytes) -> list[dict]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    manifest = json.loads(archive.read("manifest.json"))
    return _parse(archive.read(manifest["data_file"]), manifest["format"])


def slice_proof(*, tenant, content: bytes) -> dict:
    """The links of an exported slice and the signed checkpoint that covers them."""
    rows = _export_rows(content)
    checkpoint = chain.checkpoint_covering(tenant.pk, max(r["seq"] for r in rows)) if rows else None
    return {
        "chain": str(tenant.pk),
        "events": [
            {"id": r["id"], "seq": r["seq"], "hash": r["hash"], "previous_hash": r["previous_hash"]}
            for r in rows
        ],
        "checkpoint": checkpoint,
        "public_key": chain.checkpoint_public_key(tenant.pk, checkpoint["key_id"]) if checkpoint else None,
        "explanation": PROOF_NOTE,
    }


def verify_slice_proof(proof: dict, content: bytes, *, public_key: str | None = None) -> list[str]:
    """Offline checks of a slice and its proof (empty: it verifies). With `public_key` the
    checkpoint is checked with that published key alone, else with the platform's key."""
    try:
        rows = _export_rows(content)
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        return [f"audit slice unreadable: {error}"]
    problems = [
        f"seq {row['seq']} (row id {row['id']}): content does not match its hash"
        for row in rows
        if chain.link(row["previous_hash"], row) != row["hash"]
    ]
    links = [{k: r[k] for k in ("id", "seq", "hash", "previous_hash")} for r in rows]
    if links != proof.get("events"):
        problems.append("the proof's events differ from the audit slice")
    if not rows:
        return problems
    checkpoint = proof.get("checkpoint")
    if not checkpoint:
        return [*problems, "no signed checkpoint covers these events"]
    signed = (
        chain.checkpoint_verify_with(checkpoint, public_key)
        if public_key
        else chain.checkpoint_signature_ok(checkpoint)
    )
    if not signed:
        problems.append("the checkpoint's signature does not verify")
    if checkpoint.get("chain") != proof.get("chain"):
        problems.append("the checkpoint belongs to another chain")
    newest = max(r["seq"] for r in rows)
    if checkpoint.get("seq", 0) < newest:
        problems.append(f"the checkpoint (seq {checkpoint.get('seq')}) does not cover seq {newest}")
    at_head = [r for r in rows if r["seq"] == checkpoint.get("seq")]
    if at_head and at_head[0]["hash"] != checkpoint.get("hash"):
        problems.append(f"seq {checkpoint['seq']}: hash differs from the signed checkpoint")
    return problems


def slice_proof_against_chain(proof: dict) -> list[str]:
    """On the platform: each listed hash is the stored one at its seq, the checkpoint's head is in
    the stored chain, and that chain recomputes (so the slice links to the signed head)."""
    tenant_id = uuid.UUID(proof["chain"])
    wanted = [(e["seq"], e["hash"]) for e in proof.get("events", [])]
    if proof.get("checkpoint"):
        wanted.append((proof["checkpoint"]["seq"], proof["checkpoint"]["hash"]))
    with chain.chain_scope(tenant_id):
        stored = dict(
            AuditEvent.objects.filter(tenant_id=tenant_id, seq__in=[seq for seq, _ in wanted]).values_list(
                "seq", "hash"
            )
        )
    problems = [
        f"seq {seq}: hash differs from the stored chain" for seq, value in wanted if stored.get(seq) != value
    ]
    report = chain.verify_chain(tenant_id)
    return problems + [f"stored chain: {p}" for p in report.problems]

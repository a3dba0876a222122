"""Destruction certificates: one per completed run, stored as a record and a PDF, signed, verifiable.

The manifest is the sorted list of `category<TAB>record id` lines of exactly the records the run
destroyed; its SHA-256 is in the signed document. Verification recomputes it from the run's
candidates (in the database) or from `destroyed-records.txt` (in a certificate package, offline).
Certificates fall under their own retention category (`destruction_certificates`, review only).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from django.db.models import Count, Max, Min
from django.utils import timezone

from audit import chain
from audit import services as audit
from healthmail.actors import Actor
from healthmail.crypto import signing
from healthmail.tenants.context import tenant_context

from . import accounting, packages, pdf
from .models import DestructionCertificate, DisposalCandidate, DisposalRun, RetentionPolicy
from .registry import category_get


def _destroyed(run: DisposalRun):
    return DisposalCandidate.objects.filter(
        tenant_id=run.tenant_id, run=run, state=DisposalCandidate.State.DESTROYED
    )


def manifest_lines(run: DisposalRun) -> Iterator[bytes]:
    rows = _destroyed(run).order_by("category", "record_id").values_list("category", "record_id")
    for category, record_id in rows.iterator(chunk_size=20_000):
        yield f"{category}\t{record_id}\n".encode()


def manifest_digest(lines) -> tuple[str, int]:
    digest, count = hashlib.sha256(), 0
    for line in lines:
        digest.update(line)
        count += 1
    return digest.hexdigest(), count


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _person(user) -> dict | None:
    if user is None:
        return None
    return {"id": str(user.pk), "email": user.email, "name": user.get_full_name()}


def _who(person: dict | None, default: str) -> str:
    if not person:
        return default
    return f"{person['name']} <{person['email']}>" if person.get("name") else person["email"]


def _sole_officer(run: DisposalRun) -> dict:
    """Decisions behind this run that one person took alone (four eyes' sole-officer path)."""
    ids = [planned["id"] for planned in run.policy_versions.values()]
    policies = RetentionPolicy.objects.filter(tenant_id=run.tenant_id, pk__in=ids).exclude(
        sole_officer_reason=""
    )
    return {
        "run_approval": run.approval_sole_officer_reason or None,
        "policy_versions": {p.category: p.sole_officer_reason for p in policies.order_by("category")},
    }


def _document(run: DisposalRun, certificate_id, digest: str, count: int) -> dict:
    per_category = (
        _destroyed(run)
        .values("category")
        .order_by("category")
        .annotate(count=Count("id"), earliest=Min("clock_at"), latest=Max("clock_at"))
    )
    skipped = (
        DisposalCandidate.objects.filter(
            tenant_id=run.tenant_id, run=run, state=DisposalCandidate.State.SKIPPED
        )
        .values("skip_reason")
        .order_by("skip_reason")
        .annotate(count=Count("id"))
    )
    categories = []
    for row in per_category:
        category = category_get(row["category"])
        categories.append(
            {
                "category": category.key,
                "label": category.label,
                "count": row["count"],
                "earliest_record": row["earliest"].isoformat(),
                "latest_record": row["latest"].isoformat(),
                "method": category.method,
                "removed_along": run.removed_along.get(category.key, {}),
                "policy": run.policy_versions.get(category.key),
            }
        )
    return {
        "certificate_id": str(certificate_id),
        "tenant_id": str(run.tenant_id),
        "run_id": str(run.pk),
        "trigger": run.trigger,
        "judged_as_of": run.as_of.isoformat(),
        "categories": categories,
        "record_count": count,
        "skipped": {row["skip_reason"]: row["count"] for row in skipped},
        "manifest": {"format": "category<TAB>record_id<LF>, sorted", "sha256": digest},
        "policy_versions": run.policy_versions,
        "requested_by": _person(run.requested_by),
        "approved_by": _person(run.approved_by),
        "approved_at": run.approved_at.isoformat() if run.approved_at else None,
        "sole_officer": _sole_officer(run),
        "executed_by": run.executed_by,
        "planned_at": run.planned_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "issued_at": timezone.now().isoformat(),
    }


def _sole_officer_lines(sole: dict) -> list:
    lines = []
    if sole.get("run_approval"):
        lines.append(
            pdf.Line(
                f"SOLE OFFICER: the run was approved without a second person: {sole['run_approval']}",
                bold=True,
            )
        )
    for category, reason in (sole.get("policy_versions") or {}).items():
        lines.append(
            pdf.Line(
                f"SOLE OFFICER: the {category} policy version was approved by its author: {reason}", bold=True
            )
        )
    return lines


def _pdf(document: dict) -> bytes:
    L = pdf.Line
    lines = [
        L("Certificate of Destruction", size=16, bold=True),
        L(f"Certificate {document['certificate_id']}"),
        L(f"Disposal run {document['run_id']} ({document['trigger']}), organization {document['tenant_id']}"),
        L("Records destroyed", size=11, bold=True, gap_before=8),
    ]
    for row in document["categories"]:
        policy = row["policy"] or {}
        lines += [
            L(f"{row['label']}: {row['count']} records", bold=True, gap_before=3),
            L(f"  created {row['earliest_record'][:10]} to {row['latest_record'][:10]}"),
            L(f"  method: {row['method']}"),
            *[
                L(f"  removed with them: {count} {label} rows")
                for label, count in sorted((row.get("removed_along") or {}).items())
            ],
            L(f"  policy version {policy.get('version')} (maximum {policy.get('max_days')} days)"),
            L(f"  policy id {policy.get('id')}"),
        ]
    if not document["categories"]:
        lines.append(L("No record was destroyed by this run."))
    skipped = ", ".join(f"{k}: {v}" for k, v in document["skipped"].items()) or "none"
    lines += [
        L(f"Total destroyed: {document['record_count']}. Kept (not destroyed): {skipped}.", gap_before=6),
        L("Who and when", size=11, bold=True, gap_before=8),
        L(f"Requested by: {_who(document['requested_by'], 'the daily schedule')}"),
        L(f"Approved by: {_who(document['approved_by'], 'automatic (the policy needs no approval)')}"),
        L(f"Approved at: {document['approved_at'] or '-'}"),
        *_sole_officer_lines(document.get("sole_officer") or {}),
        L(f"Executed by: {document['executed_by']}"),
        L(f"Planned {document['planned_at']}"),
        L(f"Started {document['started_at']}; finished {document['finished_at']}"),
        L("Verification", size=11, bold=True, gap_before=8),
        L("Manifest SHA-256 over the destroyed record ids (category TAB id, sorted, one per line):"),
        L(document["manifest"]["sha256"]),
        L(
            "The signed certificate package (certificate.json, destroyed-records.txt, this PDF) verifies "
            "offline with: manage.py verify_evidence FILE"
        ),
    ]
    return pdf.render(
        lines, title="Certificate of Destruction", footer=f"Certificate {document['certificate_id']}"
    )


def certificate_issue(*, run: DisposalRun) -> DestructionCertificate:
    """Called in the transaction that completes the run (tenant context active)."""
    certificate = DestructionCertificate(tenant_id=run.tenant_id, run=run)
    digest, count = manifest_digest(manifest_lines(run))
    document = _document(run, certificate.pk, digest, count)
    certificate.document = document
    certificate.manifest_sha256, certificate.record_count = digest, count
    certificate.signature, certificate.key_id = chain.sign(_canonical(document), tenant_id=run.tenant_id)
    certificate.pdf = _pdf(document)
    certificate.save()
    audit.record(
        actor=Actor.system("retention.disposal"),
        action="retention.certificate_issue",
        target=certificate,
        tenant=run.tenant_id,
        details={"run": str(run.pk), "records": count, "manifest_sha256": digest},
    )
    return certificate


def certificate_verify(*, tenant, certificate: DestructionCertificate) -> list[str]:
    """Problems found (empty: the certificate verifies against the database)."""
    problems = []
    with tenant_context(tenant):
        if not chain.signature_ok(
            _canonical(certificate.document), certificate.signature, certificate.key_id, tenant_id=tenant.pk
        ):
            problems.append("the certificate's signature does not verify (document edited)")
        digest, count = manifest_digest(manifest_lines(certificate.run))
        still_there = accounting.destroyed_still_there(run=certificate.run)
    if still_there:
        problems.append(f"{still_there} records the certificate counts as destroyed are in the database")
    if digest != certificate.document["manifest"]["sha256"] or digest != certificate.manifest_sha256:
        problems.append("the destroyed record ids differ from the certificate's manifest")
    if count != certificate.record_count or count != certificate.document["record_count"]:
        problems.append(
            f"{count} records are marked destroyed; the certificate says {certificate.record_count}"
        )
    return problems


def verify_certificate_files(
    certificate_json: bytes, destroyed: bytes, *, public_key: str | None = None, tenant_id=None
) -> list[str]:
    """Offline: the signed document matches the id list in the package."""
    problems = []
    try:
        signed = json.loads(certificate_json)
        document, signature = signed["document"], signed["signature"]
    except (ValueError, KeyError):
        return ["certificate.json is not a certificate"]
    message = _canonical(document)
    if public_key is not None:
        signature_ok = signing.public_key_verifies(public_key, message, signature)
    else:
        signature_ok = chain.signature_ok(message, signature, signed.get("key_id"), tenant_id=tenant_id)
    if not signature_ok:
        problems.append("certificate.json: signature does not verify")
    lines = destroyed.splitlines(keepends=True)
    digest, count = manifest_digest(lines)
    if digest != document["manifest"]["sha256"] or count != document["record_count"]:
        problems.append("destroyed-records.txt does not match the certificate's manifest hash")
    return problems


def certificate_package(*, tenant, actor: Actor, certificate: DestructionCertificate) -> tuple[str, bytes]:
    with tenant_context(tenant):
        destroyed = b"".join(manifest_lines(certificate.run))
        signed = {
            "document": certificate.document,
            "signature": certificate.signature,
            "key_id": certificate.key_id,
        }
        content, _ = packages.build(
            {
                "certificate.json": json.dumps(signed, indent=1, sort_keys=True).encode(),
                "certificate.pdf": bytes(certificate.pdf),
                "destroyed-records.txt": destroyed,
            },
            {
                "kind": "destruction_certificate",
                "tenant_id": str(tenant.pk),
                "certificate_id": str(certificate.pk),
                "generated_at": timezone.now().isoformat(),
                "generated_by": actor.reference,
            },
        )
        audit.record(
            actor=actor,
            action="retention.certificate_download",
            target=certificate,
            tenant=tenant,
            details={"format": "package"},
        )
    return f"destruction-certificate-{certificate.pk}.zip", content


def certificate_pdf(*, tenant, actor: Actor, certificate: DestructionCertificate) -> tuple[str, bytes]:
    with tenant_context(tenant):
        audit.record(
            actor=actor,
            action="retention.certificate_download",
            target=certificate,
            tenant=tenant,
            details={"format": "pdf"},
        )
    return f"destruction-certificate-{certificate.pk}.pdf", bytes(certificate.pdf)

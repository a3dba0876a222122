"""Evidence export packages for counsel or auditors.

One signed ZIP (packages.py): the selected records decrypted for this export only (inside audited
`phi_access` reads), the audit trail slice (an audit export, itself verifiable), consent and
delivery evidence, the policies in force, a chain-of-custody record and a README. The package is
stored sealed under its own object key (category `exports`); every download is audited.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from audit.exports import ExportError, audit_export, slice_proof
from audit.phi import phi_access
from audit.selectors import EventFilter
from consent.models import Authorization, AuthorizationEvent, ConsentEvent, UnencryptedEmailWaiver
from contacts.models import Contact
from delivery.models import Message, MessageAttempt
from delivery.outbox import message_content
from healthmail.actors import Actor
from healthmail.crypto.objects import content_open, content_seal, object_key_create
from healthmail.errors import ApplicationError, NotFound
from healthmail.observability import request_meta
from healthmail.tenants.context import tenant_context

from . import packages
from .archive import archived_open
from .hold_recipients import recipients_of
from .models import ArchivedRecord, EvidenceExport, LegalHold, RetentionPolicy

MAX_CONTACTS = 1000
MAX_MESSAGES = 20_000
CONTACT_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "birth_date",
    "postal_address",
    "external_ids",
    "demographics",
    "clinical",
    "custom_fields",
)
README = """HealthMail evidence package

manifest.json lists every file with its SHA-256 and is signed (Ed25519). To verify offline:

    manage.py verify_evidence PACKAGE.zip                      (on the platform: master key)
    manage.py verify_evidence PACKAGE.zip --public-key HEX     (anywhere: the operator's published key)

audit/audit-export.zip holds the audit events that concern the package's patients and sources
(every access and change; not the organization's whole trail), verifiable on its own with
`manage.py audit_verify --export audit/audit-export.zip`. audit/chain-proof.json lists each event's
hash and previous hash and the signed chain head (checkpoint) that covers them, with its public
key; `verify_evidence` checks it, and `verify_evidence PACKAGE.zip --against-chain` (on the
platform) matches every hash against the stored, recomputed chain. chain_of_custody.json records who collected
the package, when, why and for whom; later downloads are recorded in the platform's audit trail.
The records were decrypted only to build this package. Handle it as PHI.
"""


@dataclass(frozen=True)
class ExportScope:
    contact_ids: tuple[uuid.UUID, ...] = ()
    sources: tuple[str, ...] = ()
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None

    def as_details(self) -> dict:
        return {
            "contact_ids": [str(c) for c in self.contact_ids],
            "sources": list(self.sources),
            "date_from": str(self.date_from or ""),
            "date_to": str(self.date_to or ""),
        }

    def audit_filter(self) -> EventFilter:
        """The audit events that concern this scope: about its contacts (every access, every
        change) or about its sources (the campaign itself), within its dates. Never the whole trail."""
        return EventFilter(
            since=self.date_from,
            until=self.date_to,
            concerning_contacts=tuple(self.contact_ids),
            concerning_targets=tuple(ref.partition(":")[2] or ref for ref in self.sources),
        )

    @classmethod
    def of_hold(cls, hold: LegalHold) -> ExportScope:
        """What the hold preserves: its named contacts, or, for a hold naming only campaigns, every
        recipient of them (their records and consent; messages stay those of the campaigns)."""
        contacts = tuple(hold.contact_ids) or tuple(recipients_of(hold))
        return cls(contacts, tuple(hold.sources), hold.date_from, hold.date_to)


def _json(value) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True, default=str).encode()


def _date_q(field: str, scope: ExportScope) -> Q:
    q = Q()
    if scope.date_from:
        q &= Q(**{f"{field}__date__gte": scope.date_from})
    if scope.date_to:
        q &= Q(**{f"{field}__date__lte": scope.date_to})
    return q


def _contacts(tenant, actor, scope: ExportScope, purpose: str) -> list[dict]:

    contacts = list(Contact.objects.filter(tenant=tenant, pk__in=scope.contact_ids).order_by("pk"))
    with phi_access(actor=actor, tenant=tenant, objects=contacts, fields=CONTACT_FIELDS, purpose=purpose):
        return [
            {"id": str(c.pk), "deleted_at": c.deleted_at, **{f: getattr(c, f) for f in CONTACT_FIELDS}}
            for c in contacts
        ]


def _messages(tenant, actor, scope: ExportScope, purpose: str) -> tuple[list[dict], list[dict]]:
    """(message records with content, delivery evidence) for the scope."""

    selection = Q(contact_id__in=scope.contact_ids) if scope.contact_ids else Q()
    if scope.sources:
        by_source = Q()
        for ref in scope.sources:
            source_type, _, source_id = ref.partition(":")
            by_source |= Q(source_type=source_type, source_id=source_id)
        selection &= by_source
    messages = list(
        Message.objects.filter(selection & _date_q("created_at", scope), tenant=tenant).order_by(
            "created_at"
        )[: MAX_MESSAGES + 1]
    )
    if len(messages) > MAX_MESSAGES:
        raise ApplicationError(
            f"More than {MAX_MESSAGES:,} messages match: narrow the scope.", code="too_many"
        )
    records, evidence = [], []
    attempts: dict = {}
    for row in (
        MessageAttempt.objects.filter(tenant=tenant, message__in=messages).values().order_by("started_at")
    ):
        attempts.setdefault(row["message_id"], []).append(
            {k: v for k, v in row.items() if k not in ("tenant_id", "message_id")}
        )
    with phi_access(actor=actor, tenant=tenant, objects=messages, fields=["to_address"], purpose=purpose):
        for m in messages:
            try:
                content: dict[str, Any] | str | None = (
                    message_content(m).__dict__ if m.content is not None else None
                )
            except ValueError:
                content = "destroyed under retention"
            base = {
                "id": str(m.pk),
                "message_id": m.message_id,
                "contact_id": m.contact_id,
                "stream": m.stream,
                "source": f"{m.source_type}:{m.source_id}",
                "purpose": m.purpose,
                "topic": m.topic,
                "created_at": m.created_at,
                "state": m.state,
                "finished_at": m.finished_at,
            }
            records.append({**base, "to_address": m.to_address, "content": content})
            evidence.append(
                {
                    **base,
                    "encryption_policy": m.encryption_policy,
                    "evidence": m.evidence,
                    "attempts": attempts.get(m.pk, []),
                }
            )
    return records, evidence


def _archived(tenant, actor, scope: ExportScope, purpose: str) -> list[dict]:
    rows = ArchivedRecord.objects.filter(_date_q("clock_at", scope), tenant=tenant)
    if scope.contact_ids:
        rows = rows.filter(contact_id__in=scope.contact_ids)
    if scope.sources:
        rows = rows.filter(source_ref__in=scope.sources)
    entries = list(rows.order_by("clock_at")[:MAX_MESSAGES])
    records = []
    with phi_access(
        actor=actor, tenant=tenant, objects=entries, fields=["snapshot", "content"], purpose=purpose
    ):
        for entry in entries:
            opened = archived_open(entry)  # content and replies decrypted for this package only
            records.append(
                {
                    "category": entry.category,
                    "record_id": entry.record_id,
                    "archived_at": entry.archived_at,
                    "snapshot": opened["snapshot"],
                    "content": _content_json(opened["content"]),
                    "replies": opened["replies"],
                }
            )
    return records


def _content_json(content):
    """Message or portal content as JSON (attachments base64); None or "destroyed" as they are."""
    if content is None or isinstance(content, str):
        return content
    document = asdict(content)
    for attachment in document.get("attachments", []):
        attachment["data"] = base64.b64encode(attachment["data"]).decode()
    return document


def _consent(tenant, scope: ExportScope) -> dict:

    def rows(model, *exclude: str) -> list[dict]:
        found = model.objects.filter(tenant=tenant, contact_id__in=scope.contact_ids).values()
        return [{k: v for k, v in row.items() if k not in ("tenant_id", *exclude)} for row in found]

    return {
        "consent_events": rows(ConsentEvent),
        # The signer's name is PHI already in contacts.json's identity; the evidence is the rest.
        "authorizations": rows(Authorization, "signer_name", "representative_authority"),
        "authorization_events": rows(AuthorizationEvent),
        "unencrypted_email_waivers": rows(UnencryptedEmailWaiver),
    }


def _policies(tenant, scope: ExportScope) -> list[dict]:
    versions = RetentionPolicy.objects.filter(
        tenant=tenant, status__in=[RetentionPolicy.Status.ACTIVE, RetentionPolicy.Status.SUPERSEDED]
    ).order_by("category", "version")
    return [
        {k: v for k, v in row.items() if k != "tenant_id"}
        for row in versions.values()
        # Active and superseded versions have taken effect: effective_from is set.
        if scope.date_to is None
        or (row["effective_from"] is not None and row["effective_from"].date() <= scope.date_to)
    ]


@transaction.atomic
def evidence_export_create(
    *, tenant, actor: Actor, purpose: str, recipient: str, scope: ExportScope, hold: LegalHold | None = None
) -> EvidenceExport:
    if not purpose.strip() or not recipient.strip():
        raise ApplicationError("Say what the package is for and who receives it.", code="purpose")
    if not (scope.contact_ids or scope.sources):
        raise ApplicationError("Select contacts or campaigns/sources to export.", code="scope")
    if len(scope.contact_ids) > MAX_CONTACTS:
        raise ApplicationError(f"At most {MAX_CONTACTS} contacts per package.", code="too_many")
    now = timezone.now()
    export = EvidenceExport(
        tenant=tenant,
        purpose=purpose.strip(),
        recipient=recipient.strip(),
        hold=hold,
        scope=scope.as_details(),
        created_by=actor.user,
        created_at=now,
    )
    reason = f"evidence export {export.pk}: {purpose.strip()}"[:200]
    with tenant_context(tenant):
        contacts = _contacts(tenant, actor, scope, reason) if scope.contact_ids else []
        messages, delivery = _messages(tenant, actor, scope, reason)
        archived = _archived(tenant, actor, scope, reason)
        files = {
            "records/contacts.json": _json(contacts),
            "records/messages.json": _json(messages),
            "records/archived.json": _json(archived),
            "consent/evidence.json": _json(_consent(tenant, scope) if scope.contact_ids else {}),
            "delivery/evidence.json": _json(delivery),
            "policies/policies.json": _json(_policies(tenant, scope)),
            "README.txt": README.encode(),
        }
        try:
            audit_zip = audit_export(actor=actor, tenant=tenant, fmt="json", filters=scope.audit_filter())
            files["audit/audit-export.zip"] = audit_zip.content
            files["audit/chain-proof.json"] = _json(slice_proof(tenant=tenant, content=audit_zip.content))
        except ExportError as error:
            files["audit/NOT-INCLUDED.txt"] = f"The audit slice was not included: {error}\n".encode()
        if hold is not None:
            files["hold.json"] = _json(
                {
                    k: v
                    for k, v in LegalHold.objects.filter(pk=hold.pk).values()[0].items()
                    if k != "tenant_id"
                }
            )
        custody = [
            {
                "event": "collected",
                "at": now.isoformat(),
                "by": {"kind": actor.kind, "id": actor.id, "email": getattr(actor.user, "email", "")},
                "purpose": purpose.strip(),
                "recipient": recipient.strip(),
                "system": f"HealthMail, organization {tenant.pk}",
                "request_id": request_meta().request_id,
                "method": "records decrypted from the platform's encrypted store for this package only",
            }
        ]
        files["chain_of_custody.json"] = _json(custody)
        content, manifest = packages.build(
            files,
            {
                "kind": "evidence_export",
                "package_id": str(export.pk),
                "tenant_id": str(tenant.pk),
                "generated_at": now.isoformat(),
                "generated_by": actor.reference,
                "purpose": purpose.strip(),
                "recipient": recipient.strip(),
                "scope": scope.as_details(),
            },
        )
        key = object_key_create(tenant=tenant)
        export.content_key = key
        export.content = content_seal(key, content, aad=f"evidence-export|{export.pk}".encode())
        export.file_name = f"evidence-{tenant.slug}-{now:%Y%m%dT%H%M%SZ}.zip"
        export.package_sha256 = hashlib.sha256(content).hexdigest()
        export.size_bytes = len(content)
        export.record_count = len(contacts) + len(messages) + len(archived)
        export.save()
        audit.record(
            actor=actor,
            action="retention.evidence_export",
            target=export,
            tenant=tenant,
            reason=purpose[:500],
            details={
                "records": export.record_count,
                "package_sha256": export.package_sha256,
                "files": len(manifest["files"]),
                "hold": str(hold.pk) if hold else "",
            },
            contacts=scope.contact_ids,
        )
    return export


def evidence_export_download(*, tenant, actor: Actor, export_id) -> tuple[EvidenceExport, bytes]:
    with tenant_context(tenant):
        export = EvidenceExport.objects.filter(tenant=tenant, pk=export_id).first()
        if export is None:
            raise NotFound("No such export.")
        if export.content_key_id is None or export.content is None:
            raise ApplicationError(
                "This package was destroyed under the retention policy for exports.", code="destroyed"
            )
        content = content_open(
            export.content_key_id,
            tenant.pk,
            bytes(export.content),
            aad=f"evidence-export|{export.pk}".encode(),
        )
        audit.record(
            actor=actor,
            action="retention.evidence_download",
            target=export,
            tenant=tenant,
            details={"package_sha256": export.package_sha256},
        )
    return export, content

"""Accounting of disclosures (45 CFR 164.528) for one patient, from the audit trail, signed.

164.528(a): an individual may ask for an accounting of the disclosures of their PHI in the six years
before the request, except those (a)(1)(i) to carry out treatment, payment and health care
operations, (ii) to the individual, (iv) pursuant to an authorization, and the other listed
exceptions. What this platform can disclose outside those, and so what the accounting lists:

| audit trail source (naming the patient) | disclosure | purpose recorded |
|---|---|---|
| `retention.evidence_export` | evidence package to counsel or an auditor | export's purpose, recipient |
| an incident decided "breach" | impermissible disclosure (a breach) | the incident's description |

Sending the patient their own messages, portal messages and copies of their authorizations are
disclosures to the individual or under an authorization, and are not listed. 164.528(b)(2): each
entry gives the date, the recipient (and address when known), a brief description of the PHI and a
brief statement of the purpose. The document is signed with the tenant's signing key (Ed25519, as
destruction certificates are) and verifies offline with the tenant's published public key.
"""

from __future__ import annotations

import datetime
import json
import uuid

from django.utils import timezone

from audit import chain
from audit import services as audit
from audit.models import AuditEvent
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.crypto import signing
from healthmail.errors import NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from retention import pdf
from retention.models import EvidenceExport

from .models import AffectedIndividual, Incident

YEARS = 6
EXPORT_ACTION = "retention.evidence_export"
BREACH_STATES = (Incident.Status.BREACH, Incident.Status.CLOSED)


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def period_start(today: datetime.date) -> datetime.date:
    """Six years before the request (February 29 falls back to the 28th)."""
    try:
        return today.replace(year=today.year - YEARS)
    except ValueError:
        return today.replace(year=today.year - YEARS, day=28)


def _exports(tenant: Tenant, contact_id: uuid.UUID, since: datetime.datetime) -> list[dict]:
    events = AuditEvent.objects.filter(
        tenant=tenant, action=EXPORT_ACTION, contact_ids__contains=[contact_id], occurred_at__gte=since
    ).order_by("occurred_at", "id")
    exports = {
        str(e.pk): e
        for e in EvidenceExport.objects.filter(
            tenant=tenant, pk__in=[ev.target_id for ev in events if ev.target_id]
        )
    }
    entries = []
    for event in events:
        export = exports.get(event.target_id)
        entries.append(
            {
                "date": event.occurred_at.date().isoformat(),
                "recipient": export.recipient if export else "recorded in audit event",
                "description": "Records held about the individual, in an evidence package",
                "purpose": event.reason or (export.purpose if export else ""),
                "source": {"audit_event": event.pk},
            }
        )
    return entries


def _breaches(tenant: Tenant, contact_id: uuid.UUID, since: datetime.date) -> list[dict]:
    incidents = Incident.objects.filter(
        tenant=tenant,
        status__in=BREACH_STATES,
        decision=Incident.Decision.BREACH,
        pk__in=AffectedIndividual.objects.filter(tenant=tenant, contact_id=contact_id).values("incident_id"),
    ).order_by("discovered_on")
    entries = []
    for incident in incidents:
        happened = incident.occurred_from.date() if incident.occurred_from else incident.discovered_on
        if happened < since:
            continue
        entries.append(
            {
                "date": happened.isoformat(),
                "recipient": "Unauthorized person (breach)",
                "description": incident.phi_types or "See the breach notice",
                "purpose": f"Impermissible disclosure: {incident.description}",
                "source": {"incident": str(incident.pk)},
            }
        )
    return entries


def accounting_build(*, tenant: Tenant, actor: Actor, contact_id: uuid.UUID) -> dict:
    """The signed accounting: {"document", "signature", "key_id"}. Audited, naming the patient."""
    today = timezone.localdate()
    since = period_start(today)
    with tenant_context(tenant):
        if not Contact.objects.filter(tenant=tenant, pk=contact_id).exists():
            raise NotFound("No such patient in this organization.")
        since_at = datetime.datetime.combine(since, datetime.time.min, tzinfo=datetime.UTC)
        entries = _exports(tenant, contact_id, since_at) + _breaches(tenant, contact_id, since)
        entries.sort(key=lambda e: (e["date"], json.dumps(e["source"], sort_keys=True)))
        document = {
            "kind": "accounting_of_disclosures",
            "rule": "45 CFR 164.528",
            "tenant_id": str(tenant.pk),
            "organization": tenant.name,
            "contact_id": str(contact_id),
            "period": {"from": since.isoformat(), "to": today.isoformat()},
            "disclosures": entries,
            "issued_at": timezone.now().isoformat(),
            "issued_by": actor.reference,
        }
        signature, key_id = chain.sign(_canonical(document), tenant_id=tenant.pk)
        audit.record(
            actor=actor,
            action="disclosures.accounting_issue",
            target=("contacts.contact", str(contact_id)),
            tenant=tenant,
            details={"disclosures": len(entries), "from": since.isoformat(), "key_id": key_id},
        )
    return {"document": document, "signature": signature, "key_id": key_id}


def accounting_verify(signed: dict, *, public_key: str) -> bool:
    """Offline: the document is unchanged since the tenant's key signed it."""
    try:
        return signing.public_key_verifies(public_key, _canonical(signed["document"]), signed["signature"])
    except (KeyError, TypeError):
        return False


def accounting_pdf(signed: dict) -> bytes:
    document = signed["document"]
    L = pdf.Line
    lines = [
        L("Accounting of Disclosures", size=16, bold=True),
        L(f"{document['organization']}, under {document['rule']}"),
        L(f"Individual (contact id): {document['contact_id']}"),
        L(f"Period: {document['period']['from']} to {document['period']['to']}"),
        L("Disclosures", size=11, bold=True, gap_before=8),
    ]
    for entry in document["disclosures"]:
        lines += [
            L(f"{entry['date']}: to {entry['recipient']}", bold=True, gap_before=3),
            L(f"  What: {entry['description']}"),
            L(f"  Why: {entry['purpose']}"),
        ]
    if not document["disclosures"]:
        lines.append(L("No disclosure that must be accounted for was made in this period."))
    lines += [
        L(
            "Not listed (164.528(a)(1)): disclosures for treatment, payment and health care operations, "
            "to you, and under your authorization.",
            gap_before=6,
        ),
        L("Verification", size=11, bold=True, gap_before=8),
        L(f"Signed with key {signed['key_id']} (Ed25519) over the JSON document; signature:"),
        L(signed["signature"]),
        L(f"Issued {document['issued_at']}"),
    ]
    return pdf.render(
        lines, title="Accounting of Disclosures", footer=f"Accounting for {document['contact_id']}"
    )

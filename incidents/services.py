"""Incident writes: open (by hand or from an alert), link evidence, assess the risk, decide with a
second officer's sign-off, close. Every write is audited under `incident.*`; the audit events name
the incident and references only."""

from __future__ import annotations

import datetime
import uuid

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from audit.models import Alert, AuditEvent
from delivery.models import Message
from healthmail import labels
from healthmail.accounts.four_eyes import second_person_require
from healthmail.accounts.roles import role_can
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict, NotFound, PermissionRefused
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant, TenantOwnedModel
from healthmail.tenants.services import active_baa
from retention.models import EvidenceExport

from .models import Evidence, Incident

PERMISSION = "incidents.manage"
MIN_REASONING_CHARS = 20


def require_officer(role: str | None) -> None:
    if not role_can(role, PERMISSION):
        raise PermissionRefused("Only compliance officers manage incidents.")


def _record(incident: Incident, user, action: str, **details) -> None:
    audit.record(
        actor=Actor.for_user(user),
        action=action,
        target=incident,
        tenant=incident.tenant_id,
        details={"incident": str(incident.pk), **details},
    )


@transaction.atomic
def incident_open(
    *,
    tenant: Tenant,
    user,
    role: str,
    title: str,
    description: str,
    how_discovered: str,
    discovered_on: datetime.date,
    occurred_from: datetime.datetime | None = None,
    occurred_until: datetime.datetime | None = None,
    business_associate: bool = False,
    alert: Alert | None = None,
) -> Incident:
    """Record an incident. The clock runs from `discovered_on` (the first day it was known or should
    reasonably have been known), which cannot be in the future. From an alert, the alert and its
    audit events become evidence and the window defaults to theirs."""
    require_officer(role)
    if discovered_on > timezone.localdate():
        raise ApplicationError("The discovery date cannot be in the future.", code="discovered_on")
    if occurred_from and occurred_until and occurred_until < occurred_from:
        raise ApplicationError("The incident window ends before it starts.", code="occurred_until")
    with tenant_context(tenant):
        events = []
        if alert is not None:
            if alert.tenant_id != tenant.pk:
                raise NotFound("No such alert in this organization.")
            events = list(AuditEvent.objects.filter(tenant=tenant, pk__in=alert.event_ids).order_by("id"))
            if events and occurred_from is None:
                occurred_from = min(e.occurred_at for e in events)
            if events and occurred_until is None:
                occurred_until = max(e.occurred_at for e in events)
        baa = active_baa(tenant=tenant, on=discovered_on) if business_associate else None
        incident = Incident.objects.create(
            tenant=tenant,
            title=title.strip(),
            description=description.strip(),
            how_discovered=how_discovered.strip(),
            discovered_on=discovered_on,
            occurred_from=occurred_from,
            occurred_until=occurred_until,
            business_associate=business_associate,
            baa=baa,
            opened_from_alert=alert,
            opened_by=user,
        )
        if alert is not None:
            Evidence.objects.create(
                tenant=tenant,
                incident=incident,
                kind=Evidence.Kind.ALERT,
                reference=str(alert.pk),
                note=alert.summary[:500],
                added_by=user,
            )
            for event in events:
                Evidence.objects.create(
                    tenant=tenant,
                    incident=incident,
                    kind=Evidence.Kind.AUDIT_EVENT,
                    reference=str(event.pk),
                    note=labels.label("audit_action", event.action),
                    added_by=user,
                )
        _record(
            incident,
            user,
            "incident.open",
            discovered_on=discovered_on.isoformat(),
            alert=str(alert.pk) if alert else None,
            business_associate=business_associate,
            baa=str(baa.pk) if baa else None,
        )
    return incident


def _evidence_exists(tenant: Tenant, kind: str, reference: str) -> bool:
    try:
        if kind == Evidence.Kind.AUDIT_EVENT:
            return AuditEvent.objects.filter(tenant=tenant, pk=int(reference)).exists()
        models_by_kind: dict[str, type[TenantOwnedModel]] = {
            Evidence.Kind.ALERT: Alert,
            Evidence.Kind.MESSAGE: Message,
            Evidence.Kind.EXPORT: EvidenceExport,
        }
        model = models_by_kind[kind]
        return model.objects.filter(tenant=tenant, pk=uuid.UUID(reference)).exists()
    except (ValueError, KeyError):
        return False


@transaction.atomic
def evidence_link(
    *, tenant: Tenant, user, role: str, incident: Incident, kind: str, reference: str, note: str = ""
) -> Evidence:
    """Link an audit event, alert, message or evidence export of this organization to the incident."""
    require_officer(role)
    reference = reference.strip()
    with tenant_context(tenant):
        if kind not in Evidence.Kind.values:
            raise ApplicationError("Choose what kind of evidence this is.", code="kind")
        if not _evidence_exists(tenant, kind, reference):
            raise ApplicationError(
                f"No {Evidence.Kind(kind).label.lower()} {reference!r} in this organization.",
                code="reference",
            )
        evidence, created = Evidence.objects.get_or_create(
            tenant=tenant,
            incident=incident,
            kind=kind,
            reference=reference,
            defaults={"note": note.strip()[:500], "added_by": user},
        )
        if created:
            _record(incident, user, "incident.evidence_link", kind=kind, reference=reference)
    return evidence


FACTORS = (
    (
        "factor_nature",
        "the nature and extent of the PHI involved (identifiers, likelihood of re-identification)",
    ),
    ("factor_recipient", "the unauthorized person who used the PHI or to whom it was disclosed"),
    ("factor_acquired", "whether the PHI was actually acquired or viewed"),
    ("factor_mitigated", "the extent to which the risk to the PHI has been mitigated"),
)


@transaction.atomic
def risk_assess(
    *, tenant: Tenant, user, role: str, incident: Incident, factors: dict[str, str], probability: str
) -> Incident:
    """164.402(2): the four factors, each with reasoning, and the conclusion drawn from them. Only
    while the incident is open: a decided incident keeps the assessment it was decided on."""
    require_officer(role)
    missing = [
        label for name, label in FACTORS if len((factors.get(name) or "").strip()) < MIN_REASONING_CHARS
    ]
    if missing:
        raise ApplicationError(
            f"Give your reasoning (at least {MIN_REASONING_CHARS} characters) on: "
            + "; ".join(missing)
            + ".",
            code="factors",
        )
    if probability not in Incident.Probability.values:
        raise ApplicationError("Conclude: low probability of compromise, or not.", code="probability")
    with tenant_context(tenant):
        values = {name: factors[name].strip() for name, _ in FACTORS}
        updated = Incident.objects.filter(pk=incident.pk, status=Incident.Status.OPEN).update(
            **values, probability=probability, assessed_by=user, assessed_at=timezone.now()
        )
        if updated != 1:
            raise Conflict("The decision on this incident is already proposed; the assessment is fixed.")
        incident.refresh_from_db()
        _record(incident, user, "incident.risk_assess", probability=probability)
    return incident


@transaction.atomic
def decision_propose(
    *, tenant: Tenant, user, role: str, incident: Incident, decision: str, reason: str
) -> Incident:
    """The first officer proposes; a second signs off. "Not a breach" needs an assessment that found a
    low probability of compromise (164.402(2): otherwise the incident is presumed a breach)."""
    require_officer(role)
    if decision not in Incident.Decision.values:
        raise ApplicationError("Choose a decision.", code="decision")
    if not incident.assessed_at:
        raise ApplicationError("Complete the four-factor risk assessment first.", code="assessment")
    if decision == Incident.Decision.NOT_BREACH and incident.probability != Incident.Probability.LOW:
        raise ApplicationError(
            "The assessment did not find a low probability of compromise: the incident is presumed a breach.",
            code="presumed_breach",
        )
    if len(reason.strip()) < MIN_REASONING_CHARS:
        raise ApplicationError(
            f"Explain the decision (at least {MIN_REASONING_CHARS} characters).", code="reason"
        )
    with tenant_context(tenant):
        updated = Incident.objects.filter(pk=incident.pk, status=Incident.Status.OPEN).update(
            decision=decision,
            decision_reason=reason.strip(),
            proposed_by=user,
            proposed_at=timezone.now(),
            status=Incident.Status.PENDING_SIGN_OFF,
        )
        if updated != 1:
            raise Conflict("A decision on this incident is already proposed or taken.")
        incident.refresh_from_db()
        _record(incident, user, "incident.decision_propose", decision=decision)
    return incident


@transaction.atomic
def decision_sign_off(
    *, tenant: Tenant, user, role: str, incident: Incident, sole_officer_reason: str = ""
) -> Incident:
    """Four eyes: a second compliance officer signs the proposed decision off (or the sole officer,
    with a recorded reason, when nobody else can)."""
    require_officer(role)
    with tenant_context(tenant):
        second = second_person_require(
            tenant=tenant,
            approver=user,
            authors=[incident.proposed_by_id],
            permission=PERMISSION,
            what="incident decision",
            sole_officer_reason=sole_officer_reason,
        )
        updated = Incident.objects.filter(pk=incident.pk, status=Incident.Status.PENDING_SIGN_OFF).update(
            status=incident.decision,
            signed_off_by=user,
            signed_off_at=timezone.now(),
            sole_officer_reason=second.sole_officer_reason,
        )
        if updated != 1:
            raise Conflict("There is no proposed decision to sign off.")
        incident.refresh_from_db()
        _record(
            incident, user, "incident.decision_sign_off", decision=incident.decision, **second.as_details()
        )
    return incident


@transaction.atomic
def decision_reject(*, tenant: Tenant, user, role: str, incident: Incident, reason: str) -> Incident:
    """The second officer sends the proposal back: the incident is open again for assessment."""
    require_officer(role)
    if len(reason.strip()) < MIN_REASONING_CHARS:
        raise ApplicationError(f"Say why (at least {MIN_REASONING_CHARS} characters).", code="reason")
    with tenant_context(tenant):
        updated = Incident.objects.filter(pk=incident.pk, status=Incident.Status.PENDING_SIGN_OFF).update(
            status=Incident.Status.OPEN, decision="", proposed_by=None, proposed_at=None
        )
        if updated != 1:
            raise Conflict("There is no proposed decision to send back.")
        incident.refresh_from_db()
        audit.record(
            actor=Actor.for_user(user),
            action="incident.decision_reject",
            target=incident,
            tenant=tenant,
            reason=reason.strip(),
            details={"incident": str(incident.pk)},
        )
    return incident


LETTER_FIELDS = ("phi_types", "steps_for_individuals", "what_we_are_doing", "contact_procedures")


@transaction.atomic
def letter_content_set(
    *, tenant: Tenant, user, role: str, incident: Incident, content: dict[str, str]
) -> Incident:
    """164.404(c)(1)(B)-(E): the parts of every notice the officer writes (the description and dates
    of (A) come from the incident itself)."""
    require_officer(role)
    empty = [name for name in LETTER_FIELDS if not (content.get(name) or "").strip()]
    if empty:
        raise ApplicationError("Every part of the notice is required by 164.404(c).", code=empty[0])
    with tenant_context(tenant):
        Incident.objects.filter(pk=incident.pk).update(**{n: content[n].strip() for n in LETTER_FIELDS})
        incident.refresh_from_db()
        _record(incident, user, "incident.letter_update")
    return incident


@transaction.atomic
def incident_close(*, tenant: Tenant, user, role: str, incident: Incident) -> Incident:
    """Close a decided incident. A breach closes only once every notice it calls for is out (sent to
    each individual, recorded as sent to HHS, the media, the covered entity): closing stops its clocks
    and their alerts, and 164.414 puts on the organization the burden of showing the notices were made."""
    from . import clocks  # clocks -> delays -> services: imported here to break the cycle

    require_officer(role)
    with tenant_context(tenant):
        if incident.status == Incident.Status.BREACH:
            owed = clocks.pending_deadlines(incident)
            if owed:
                raise Conflict(
                    "Notices are still owed: "
                    + "; ".join(f"{d.label} (due {d.due_on.isoformat()})" for d in owed)
                    + ". Send them, or record them as sent, before closing."
                )
        updated = Incident.objects.filter(
            pk=incident.pk, status__in=[Incident.Status.BREACH, Incident.Status.NOT_BREACH]
        ).update(status=Incident.Status.CLOSED, closed_at=timezone.now())
        if updated != 1:
            raise Conflict("Only a decided incident can be closed.")
        incident.refresh_from_db()
        _record(incident, user, "incident.close")
    return incident

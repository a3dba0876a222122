"""Notice letters (164.404(c)) and the individual notices, sent through the secure portal.

Each letter holds, in plain language, (A) what happened with the date of the breach and of its
discovery, (B) the types of PHI involved, (C) the steps individuals should take, (D) what the
organization is doing, and (E) how to ask questions. An individual's letter goes as a portal message
(transactional, operations, portal always: the email is only the PHI-free notice with a link), the
same path as a copy of a signed authorization. A contact without a usable email address gets a
"substitute notice needed" row instead (164.404(d)(2)): the officer sees how many and arranges the
substitute (a web posting or media notice from 10 on, another written notice below)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils.html import escape

from audit import services as audit
from audit.phi import phi_access
from contacts.models import Contact
from delivery.models import EncryptionPolicy, Message, Stream
from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many
from delivery.patient_mail import PatientMailUnavailable
from delivery.sender_domains.selectors import sender_domain_verified
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .deadlines import Audience
from .delays import delay_in_force
from .models import AffectedIndividual, Incident, Notice
from .services import LETTER_FIELDS, require_officer

SOURCE_TYPE = "incident_notice"
SUBSTITUTE_WEB_THRESHOLD = 10  # 164.404(d)(2)(ii): 10 or more without contact details
NOTICE_PURPOSE = "breach notification to the individual"


@dataclass(frozen=True)
class Letter:
    audience: str
    subject: str
    text: str


def _when(incident: Incident) -> str:
    if incident.occurred_from and incident.occurred_until:
        start, end = incident.occurred_from.date(), incident.occurred_until.date()
        return f"on {start:%B %d, %Y}" if start == end else f"between {start:%B %d, %Y} and {end:%B %d, %Y}"
    return "on a date we are still establishing"


def letter(incident: Incident, tenant: Tenant, audience: str, state: str = "") -> Letter:
    """The letter to one audience (a State's media: that State); refused while a 164.404(c) element
    is missing. 164.406(c) and 164.410(c)(2) ask the media and covered entity notices for the same
    content; HHS's notice (164.408) is filed on its web portal, from the same facts."""
    missing = [name for name in LETTER_FIELDS if not getattr(incident, name).strip()]
    if missing:
        raise ApplicationError(
            "Complete the notice content first (types of information, steps, what we are doing, contacts).",
            code="letter_incomplete",
        )
    opening = {
        Audience.INDIVIDUALS: "We are writing to tell you about an incident that involved some of your "
        "health information.",
        Audience.MEDIA: f"{tenant.name} is notifying residents of {state or 'the affected State'} about "
        "a breach of health information.",
        Audience.HHS: f"{tenant.name} reports this breach of unsecured protected health information.",
        Audience.HHS_ANNUAL_LOG: f"{tenant.name} logs the following breach for its annual report.",
        Audience.COVERED_ENTITY: "As your business associate, we notify you of the following breach.",
    }[audience]
    text = (
        f"{opening}\n\n"
        f"What happened\n{incident.description}\n"
        f"It happened {_when(incident)}. We discovered it on {incident.discovered_on:%B %d, %Y}.\n\n"
        f"What information was involved\n{incident.phi_types}\n\n"
        f"What you can do\n{incident.steps_for_individuals}\n\n"
        f"What we are doing\n{incident.what_we_are_doing}\n\n"
        f"For more information\n{incident.contact_procedures}\n\n"
        f"{tenant.name}\n{tenant.postal_address}\n"
    )
    return Letter(audience, f"Notice of a privacy incident at {tenant.name}", text)


@dataclass(frozen=True)
class Sent:
    portal: int
    substitute: int
    already: int


def _addresses(tenant: Tenant, user, contacts: list[Contact]) -> dict:
    if not contacts:
        return {}
    with phi_access(
        actor=Actor.for_user(user),
        tenant=tenant,
        objects=contacts,
        fields=["email"],
        purpose=NOTICE_PURPOSE,
    ):
        return {c.pk: (c.email or "").strip() for c in contacts if c.deleted_at is None}


@transaction.atomic
def individual_notices_send(*, tenant: Tenant, user, role: str, incident: Incident) -> Sent:
    """One portal message per affected individual who has none yet; a substitute-notice row for
    each without a usable address. Only for a decided breach."""
    require_officer(role)
    if incident.status != Incident.Status.BREACH:
        raise Conflict("Notices go out once the incident is decided a breach and signed off.")
    content = letter(incident, tenant, Audience.INDIVIDUALS)
    with tenant_context(tenant):
        held = delay_in_force(incident)
        if held is not None:
            raise Conflict(
                f"A law enforcement official asked to delay the notices until {held[1]:%B %d, %Y} "
                "(164.412): none goes out before then."
            )
        sender_domain = sender_domain_verified(tenant=tenant)
        if sender_domain is None:
            raise PatientMailUnavailable(
                "The organization has no verified sender domain: notices cannot be emailed yet.",
                code="sender_domain_unverified",
            )
        noticed = set(
            Notice.objects.filter(
                tenant=tenant, incident=incident, audience=Audience.INDIVIDUALS
            ).values_list("contact_id", flat=True)
        )
        pending = [
            a.contact_id
            for a in AffectedIndividual.objects.filter(tenant=tenant, incident=incident)
            if a.contact_id not in noticed
        ]
        contacts = list(Contact.objects.filter(tenant=tenant, pk__in=pending).order_by("pk"))
        addresses = _addresses(tenant, user, contacts)
        portal = substitute = 0
        html = f"<pre>{escape(content.text)}</pre>"
        for contact in contacts:
            address = addresses.get(contact.pk, "")
            message_id = None
            if "@" in address:
                [message] = message_enqueue_many(
                    tenant=tenant,
                    stream=Stream.TRANSACTIONAL,
                    source_type=SOURCE_TYPE,
                    source_id=str(incident.pk),
                    purpose="operations",
                    recipients=[OutboxRecipient(contact.pk, address)],
                    uses_phi=True,
                    encryption_policy=EncryptionPolicy.PORTAL_ALWAYS,
                    sender_domain=sender_domain,
                    content=RenderedContent(subject=content.subject, html=html, text=content.text),
                )
                message_id = message.pk
                portal += 1
            else:
                substitute += 1
            Notice.objects.create(
                tenant=tenant,
                incident=incident,
                audience=Audience.INDIVIDUALS,
                contact=contact,
                method=Notice.Method.PORTAL if message_id else Notice.Method.SUBSTITUTE,
                message_id=message_id,
                created_by=user,
            )
        audit.record(
            actor=Actor.for_user(user),
            action="incident.notices_send",
            target=incident,
            tenant=tenant,
            details={
                "incident": str(incident.pk),
                "portal": portal,
                "substitute": substitute,
                "already": len(noticed),
            },
            contacts=[c.pk for c in contacts],
        )
    return Sent(portal=portal, substitute=substitute, already=len(noticed))


@dataclass(frozen=True)
class NoticeRow:
    notice: Notice
    state: str


def notice_rows(*, tenant: Tenant, incident: Incident) -> list[NoticeRow]:
    """The notices with the delivery state of their messages (tracking)."""
    with tenant_context(tenant):
        notices = list(Notice.objects.filter(tenant=tenant, incident=incident).order_by("id"))
        states = dict(
            Message.objects.filter(
                tenant=tenant, pk__in=[n.message_id for n in notices if n.message_id]
            ).values_list("pk", "state")
        )
    return [
        NoticeRow(
            n, Message.State(states[n.message_id]).label if n.message_id in states else "substitute needed"
        )
        for n in notices
    ]


def substitute_method(count: int) -> str:
    if not count:
        return ""
    if count >= SUBSTITUTE_WEB_THRESHOLD:
        return (
            "10 or more individuals lack usable contact details: post a conspicuous notice on the home page "
            "for 90 days or notify major print or broadcast media, with a toll-free number active for at "
            "least 90 days (164.404(d)(2)(ii))."
        )
    return (
        "Fewer than 10 individuals lack usable contact details: reach them by another written notice, "
        "telephone or other means (164.404(d)(2)(i))."
    )

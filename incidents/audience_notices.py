"""Notices to the Secretary of HHS, the media of a State and the covered entity, tracked.

| rule | notice to | content | sent through |
|---|---|---|---|
| 164.406(a),(c) | media of a State with more than 500 affected residents | 164.404(c) | press release |
| 164.408(b) | the Secretary, 500 or more affected | as HHS's web site says | HHS breach portal |
| 164.408(c) | the Secretary, annual log, fewer than 500 | as above | HHS breach portal |
| 164.410(c) | the covered entity (business associate notice) | each individual identified, | the BAA |
|  |  | and what the covered entity needs for its 164.404(c) notice |  |

The platform drafts each letter from the incident's 164.404(c) content and tracks it: prepared (the
letter's SHA-256, by whom, when), then sent (the date, the channel, a reference such as the HHS
portal's confirmation number). A sent notice stops its clock. Which notices an incident needs is
read from its deadlines, so a media notice exists only for a State over the threshold."""

from __future__ import annotations

import datetime
import hashlib

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from audit.phi import phi_access
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import clocks, notices
from .deadlines import Audience
from .models import AffectedIndividual, AudienceNotice, Incident
from .services import require_officer

IDENTIFICATION_PURPOSE = "business associate notice to the covered entity (164.410(c)(1))"


def _identification(tenant: Tenant, user, incident: Incident) -> str:
    """164.410(c)(1): each individual identified, to the extent possible (an audited PHI read)."""
    ids = AffectedIndividual.objects.filter(tenant=tenant, incident=incident).values_list("contact_id")
    contacts = list(Contact.objects.filter(tenant=tenant, pk__in=ids).order_by("pk"))
    if not contacts:
        return "Individuals affected: none identified yet; we will send their identification promptly.\n"
    with phi_access(
        actor=Actor.for_user(user),
        tenant=tenant,
        objects=contacts,
        fields=["first_name", "last_name", "email"],
        purpose=IDENTIFICATION_PURPOSE,
    ):
        lines = [
            " ".join(part for part in (c.first_name, c.last_name) if part) + f" <{c.email or 'no email'}>"
            f" (contact {c.pk})"
            for c in contacts
        ]
    return f"Individuals affected ({len(lines)}):\n" + "\n".join(f"- {line.strip()}" for line in lines) + "\n"


def audience_letter(*, tenant: Tenant, user, incident: Incident, audience: str, state: str = "") -> str:
    """The letter's text (call inside the tenant context)."""
    text = notices.letter(incident, tenant, audience, state).text
    if audience in (Audience.HHS, Audience.HHS_ANNUAL_LOG, Audience.COVERED_ENTITY):
        count = AffectedIndividual.objects.filter(tenant=tenant, incident=incident).count()
        text += f"\nNumber of individuals affected: {count}\n"
    if audience == Audience.COVERED_ENTITY:
        text += "\n" + _identification(tenant, user, incident)
    return text


def _required(incident: Incident, audience: str, state: str) -> None:
    needed = {(d.audience, d.state) for d in clocks.incident_deadlines(incident)}
    if audience == Audience.INDIVIDUALS or (audience, state) not in needed:
        raise ApplicationError("This incident does not call for that notice.", code="audience")


@transaction.atomic
def audience_notice_prepare(
    *, tenant: Tenant, user, role: str | None, incident: Incident, audience: str, state: str = ""
) -> AudienceNotice:
    """Draft (or draft again, until sent) the notice and record its digest."""
    require_officer(role)
    if incident.status != Incident.Status.BREACH:
        raise Conflict("Notices are prepared once the incident is decided a breach and signed off.")
    with tenant_context(tenant):
        _required(incident, audience, state)
        text = audience_letter(tenant=tenant, user=user, incident=incident, audience=audience, state=state)
        digest = hashlib.sha256(text.encode()).hexdigest()
        notice, created = AudienceNotice.objects.get_or_create(
            tenant=tenant,
            incident=incident,
            audience=audience,
            state=state,
            defaults={"letter_sha256": digest, "prepared_by": user},
        )
        if not created:
            updated = AudienceNotice.objects.filter(pk=notice.pk, sent_on__isnull=True).update(
                letter_sha256=digest, prepared_by=user, prepared_at=timezone.now()
            )
            if updated != 1:
                raise Conflict("This notice was sent already.")
            notice.refresh_from_db()
        audit.record(
            actor=Actor.for_user(user),
            action="incident.notice_prepare",
            target=incident,
            tenant=tenant,
            details={"incident": str(incident.pk), "audience": audience, "state": state, "sha256": digest},
        )
    return notice


@transaction.atomic
def audience_notice_sent(
    *,
    tenant: Tenant,
    user,
    role: str | None,
    incident: Incident,
    audience: str,
    state: str = "",
    sent_on: datetime.date,
    channel: str,
    reference: str = "",
) -> AudienceNotice:
    """Record that the prepared notice left: when, how, with which reference. Its clock stops."""
    require_officer(role)
    if sent_on > timezone.localdate():
        raise ApplicationError("The date sent cannot be in the future.", code="sent_on")
    if sent_on < incident.discovered_on:
        raise ApplicationError("The date sent cannot be before the discovery.", code="sent_on")
    if not channel.strip():
        raise ApplicationError("Say how it was sent (HHS portal, press release, email...).", code="channel")
    with tenant_context(tenant):
        updated = AudienceNotice.objects.filter(
            tenant=tenant, incident=incident, audience=audience, state=state, sent_on__isnull=True
        ).update(
            sent_on=sent_on, sent_by=user, channel=channel.strip()[:200], reference=reference.strip()[:200]
        )
        if updated != 1:
            raise Conflict("Prepare this notice first (a sent notice stays as recorded).")
        notice = AudienceNotice.objects.get(tenant=tenant, incident=incident, audience=audience, state=state)
        audit.record(
            actor=Actor.for_user(user),
            action="incident.notice_sent",
            target=incident,
            tenant=tenant,
            details={
                "incident": str(incident.pk),
                "audience": audience,
                "state": state,
                "sent_on": sent_on.isoformat(),
                "channel": notice.channel,
            },
        )
    return notice


def audience_rows(incident: Incident) -> list[tuple[object, AudienceNotice | None]]:
    """Each notice the incident needs beside the individual ones, with its tracking row (call inside
    the tenant context)."""
    tracked = {
        (n.audience, n.state): n
        for n in AudienceNotice.objects.filter(tenant_id=incident.tenant_id, incident=incident)
    }
    return [
        (d, tracked.get((d.audience, d.state)))
        for d in clocks.incident_deadlines(incident)
        if d.audience != Audience.INDIVIDUALS
    ]

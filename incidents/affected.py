"""Affected individuals, derived from the audit trail: every contact an event of the window names
(a PHI read, a message sent, an export), for one actor or system when the officer names one.

The audit trail indexes the contacts each event concerns (`contact_ids`, GIN), so the derivation is
one grouped query over the window; the incidents app's own events are left out (deriving must not
count itself): its `incident.*` events and the PHI reads its notices make (the addresses read to send
the individuals' notices, the identification in the covered entity's letter)."""

from __future__ import annotations

import datetime

from django.db import connection, transaction

from audit import services as audit
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .audience_notices import IDENTIFICATION_PURPOSE
from .models import AffectedIndividual, Incident
from .notices import NOTICE_PURPOSE
from .services import require_officer

MAX_WINDOW = datetime.timedelta(days=6 * 366)
ACTOR_TYPES = ("user", "api_key", "system", "recipient")
OWN_READ_PURPOSES = [NOTICE_PURPOSE, IDENTIFICATION_PURPOSE]

_DERIVE = """
SELECT contact_id, count(*), min(id)
FROM audit_auditevent, unnest(contact_ids) AS contact_id
WHERE tenant_id = %s AND occurred_at >= %s AND occurred_at <= %s AND action NOT LIKE 'incident.%%'
  AND NOT (action = 'phi.read' AND coalesce(details->>'purpose', '') = ANY(%s))
  AND (%s = '' OR actor_type = %s) AND (%s = '' OR actor_id = %s)
GROUP BY contact_id
"""


@transaction.atomic
def affected_derive(
    *,
    tenant: Tenant,
    user,
    role: str,
    incident: Incident,
    since: datetime.datetime,
    until: datetime.datetime,
    actor_type: str = "",
    actor_id: str = "",
) -> int:
    """Replace the incident's affected individuals with those the audit trail names for the window
    (and actor). Returns how many."""
    require_officer(role)
    if until < since:
        raise ApplicationError("The window ends before it starts.", code="until")
    if until - since > MAX_WINDOW:
        raise ApplicationError("The window can be at most six years.", code="since")
    if actor_type and actor_type not in ACTOR_TYPES:
        raise ApplicationError("Unknown kind of actor.", code="actor_type")
    if actor_id and not actor_type:
        raise ApplicationError("Say what kind of actor the id names.", code="actor_type")
    if incident.status in (Incident.Status.CLOSED, Incident.Status.NOT_BREACH):
        raise Conflict("This incident is decided or closed; its affected individuals are fixed.")
    with tenant_context(tenant):
        with connection.cursor() as cursor:
            cursor.execute(
                _DERIVE,
                [
                    tenant.pk,
                    since,
                    until,
                    OWN_READ_PURPOSES,
                    actor_type,
                    actor_type,
                    actor_id.strip(),
                    actor_id.strip(),
                ],
            )
            rows = {contact_id: (count, first) for contact_id, count, first in cursor.fetchall()}
        states = dict(Contact.objects.filter(tenant=tenant, pk__in=rows).values_list("pk", "state"))
        AffectedIndividual.objects.filter(tenant=tenant, incident=incident).delete()
        AffectedIndividual.objects.bulk_create(
            AffectedIndividual(
                tenant=tenant,
                incident=incident,
                contact_id=contact_id,
                state=(states.get(contact_id) or "").upper(),
                event_count=count,
                first_event_id=first,
            )
            for contact_id, (count, first) in sorted(rows.items())
            if contact_id in states  # a contact id the trail names but no row holds (erased) is skipped
        )
        query = {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "actor_type": actor_type,
            "actor_id": actor_id.strip(),
        }
        Incident.objects.filter(pk=incident.pk).update(derived_query=query)
        incident.derived_query = query
        found = [c for c in rows if c in states]
        audit.record(
            actor=Actor.for_user(user),
            action="incident.derive_affected",
            target=incident,
            tenant=tenant,
            details={"incident": str(incident.pk), **query, "affected": len(found)},
            contacts=found,
        )
    return len(found)

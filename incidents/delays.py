"""Law-enforcement delays (45 CFR 164.412): an official's statement that a notice would impede a
criminal investigation or damage national security, recorded on the incident.

(a) A written statement that specifies the time: the notices wait until the date it names.
(b) An oral statement: documented here with the official's identity; the notices wait no longer than
30 days from the statement, unless a written statement is submitted in that time (record it too: the
periods merge). The deadlines are tolled by the delays (incidents.deadlines.tolled), and the platform
sends no individual notice while a delay is in force."""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import deadlines
from .models import Incident, LawEnforcementDelay
from .services import require_officer

RUNNING = (Incident.Status.OPEN, Incident.Status.PENDING_SIGN_OFF, Incident.Status.BREACH)


def delay_periods(incident: Incident) -> list[deadlines.Period]:
    """Call inside the incident's tenant context."""
    return [
        (d.stated_on, d.delay_until)
        for d in LawEnforcementDelay.objects.filter(tenant_id=incident.tenant_id, incident=incident)
    ]


def delay_in_force(incident: Incident, today: datetime.date | None = None) -> deadlines.Period | None:
    return deadlines.delayed_on(today or timezone.localdate(), delay_periods(incident))


@transaction.atomic
def delay_record(
    *,
    tenant: Tenant,
    user,
    role: str | None,
    incident: Incident,
    kind: str,
    ground: str,
    official: str,
    stated_on: datetime.date,
    statement: str,
    delay_until: datetime.date | None = None,
) -> LawEnforcementDelay:
    require_officer(role)
    if incident.status not in RUNNING:
        raise Conflict("Only an incident whose notices are still due can be delayed.")
    if kind not in LawEnforcementDelay.Kind.values:
        raise ApplicationError("Choose whether the statement was written or oral.", code="kind")
    if ground not in LawEnforcementDelay.Ground.values:
        raise ApplicationError(
            "164.412 applies when a notice would impede a criminal investigation or damage national "
            "security: choose which.",
            code="ground",
        )
    if not official.strip():
        raise ApplicationError("Identify the official: name, title and agency.", code="official")
    if not statement.strip():
        raise ApplicationError("Write down what the official stated.", code="statement")
    if stated_on > timezone.localdate():
        raise ApplicationError("The statement's date cannot be in the future.", code="stated_on")
    try:
        if kind == LawEnforcementDelay.Kind.WRITTEN:
            if delay_until is None:
                raise ApplicationError("Give the date the written statement names.", code="delay_until")
            period = deadlines.written_delay(stated_on, delay_until)
        else:
            period = deadlines.oral_delay(stated_on)
    except deadlines.DeadlineInputError as error:
        raise ApplicationError(str(error), code="delay_until") from None
    with tenant_context(tenant):
        delay = LawEnforcementDelay.objects.create(
            tenant=tenant,
            incident=incident,
            kind=kind,
            ground=ground,
            official=official.strip()[:300],
            stated_on=period[0],
            delay_until=period[1],
            statement=statement.strip(),
            recorded_by=user,
        )
        audit.record(
            actor=Actor.for_user(user),
            action="incident.delay_record",
            target=incident,
            tenant=tenant,
            details={
                "incident": str(incident.pk),
                "kind": kind,
                "ground": ground,
                "stated_on": period[0].isoformat(),
                "delay_until": period[1].isoformat(),
            },
        )
    return delay

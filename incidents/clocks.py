"""An incident's clocks: its deadlines (incidents.deadlines applied to its facts) and the alerts a
daily job raises at 30, 14, 7 and 1 days before each.

An undecided incident's clocks already run: an impermissible disclosure is presumed a breach
(164.402(2)), so the deadlines count from discovery until the decision says otherwise. A decided
"not a breach" or closed incident has none. Alerts go through the audit trail (an event flagged
`alert`), so the audit alert rules raise them in-app and mail every compliance officer."""

from __future__ import annotations

import datetime
from collections import Counter

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import deadlines, delays
from .models import (
    AffectedIndividual,
    AudienceNotice,
    ClockAlert,
    Incident,
    Notice,
)

RUNNING = (Incident.Status.OPEN, Incident.Status.PENDING_SIGN_OFF, Incident.Status.BREACH)


def incident_deadlines(incident: Incident) -> list[deadlines.Deadline]:
    """Call inside the incident's tenant context."""
    if incident.status not in RUNNING:
        return []
    states = Counter(
        AffectedIndividual.objects.filter(tenant_id=incident.tenant_id, incident=incident).values_list(
            "state", flat=True
        )
    )
    affected = sum(states.values())
    states.pop("", None)  # a contact without a known State counts toward the total, not a State
    return deadlines.breach_deadlines(
        discovered_on=incident.discovered_on,
        affected=affected,
        residents_by_state=dict(states),
        baa_days=incident.baa.breach_notification_days if incident.baa is not None else None,
        business_associate=incident.business_associate,
        delays=delays.delay_periods(incident),
    )


def _done(incident: Incident) -> set[tuple[str, str]]:
    """(audience, State) pairs whose notices are out: individuals once each affected contact has one;
    HHS, a State's media or the covered entity once their notice is recorded as sent."""
    tenant_id = incident.tenant_id
    affected = AffectedIndividual.objects.filter(tenant_id=tenant_id, incident=incident)
    noticed = Notice.objects.filter(
        tenant_id=tenant_id, incident=incident, audience=deadlines.Audience.INDIVIDUALS
    ).values("contact_id")
    done = set(
        AudienceNotice.objects.filter(
            tenant_id=tenant_id, incident=incident, sent_on__isnull=False
        ).values_list("audience", "state")
    )
    # Each affected individual has a notice: a count would be fooled by individuals derived again
    # after the notices went out (as many notices as individuals, not the same people).
    if affected.exists() and not affected.exclude(contact_id__in=noticed).exists():
        done.add((deadlines.Audience.INDIVIDUALS, ""))
    return done


def pending_deadlines(incident: Incident) -> list[deadlines.Deadline]:
    done = _done(incident)
    return [d for d in incident_deadlines(incident) if (d.audience, d.state) not in done]


def _severity(threshold: int) -> str:
    return "critical" if threshold <= 7 else "warning"


def clock_alerts_raise_tenant(tenant: Tenant, today: datetime.date | None = None) -> int:
    """Raise each threshold an open deadline has reached, once (a unique row per threshold)."""
    today = today or timezone.localdate()
    raised = 0
    with tenant_context(tenant):
        for incident in Incident.objects.filter(tenant=tenant, status__in=RUNNING).select_related("baa"):
            for deadline in pending_deadlines(incident):
                threshold = deadlines.alert_threshold(deadline.due_on, today)
                if threshold is None:
                    continue
                key = f"{deadline.audience}:{deadline.state}" if deadline.state else deadline.audience
                try:
                    with transaction.atomic():
                        ClockAlert.objects.create(
                            tenant=tenant,
                            incident=incident,
                            audience=key,
                            threshold_days=threshold,
                            due_on=deadline.due_on,
                        )
                        left = deadlines.days_left(deadline.due_on, today)
                        when = "overdue" if left < 0 else f"due in {left} days"
                        audit.record(
                            actor=Actor.system("incidents.clocks"),
                            action="incident.deadline_alert",
                            target=incident,
                            tenant=tenant,
                            details={
                                "incident": str(incident.pk),
                                "audience": key,
                                "due_on": deadline.due_on.isoformat(),
                                "threshold_days": threshold,
                                # read by audit.alerts.flagged_by_writer: references only, no PHI
                                "alert": _severity(threshold),
                                "summary": f"Breach notice to {deadline.label} {when} "
                                f"({deadline.due_on.isoformat()}, {deadline.rule})",
                            },
                        )
                except IntegrityError:
                    continue  # this threshold was raised already
                raised += 1
    return raised


def clock_alerts_raise(today: datetime.date | None = None) -> int:
    return sum(clock_alerts_raise_tenant(tenant, today) for tenant in Tenant.objects.all())

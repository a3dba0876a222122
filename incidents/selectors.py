"""Incident reads for the pages: the list with its clocks, and one incident with everything shown."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils import timezone

from audit.models import Alert
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import clocks, deadlines
from .models import Incident


@dataclass(frozen=True)
class Clock:
    deadline: deadlines.Deadline
    days_left: int

    @property
    def urgency(self) -> str:
        return "danger" if self.days_left <= 7 else "warn" if self.days_left <= 30 else "ok"


def clocks_of(incident: Incident, today: datetime.date | None = None) -> list[Clock]:
    today = today or timezone.localdate()
    return [Clock(d, deadlines.days_left(d.due_on, today)) for d in clocks.pending_deadlines(incident)]


def incident_list(*, tenant: Tenant) -> list[tuple[Incident, Clock | None]]:
    """Open incidents first (nearest deadline first), then the decided and closed ones."""
    with tenant_context(tenant):
        incidents = list(Incident.objects.filter(tenant=tenant).select_related("baa"))
        rows = [(incident, next(iter(clocks_of(incident)), None)) for incident in incidents]
    far = datetime.date.max
    return sorted(rows, key=lambda row: (not row[0].is_open, row[1].deadline.due_on if row[1] else far))


def alerts_to_open_from(*, tenant: Tenant, limit: int = 20) -> list[Alert]:
    """Recent alerts no incident was opened from yet: break-glass, chain breaks, mass exports..."""
    with tenant_context(tenant):
        used = Incident.objects.filter(tenant=tenant, opened_from_alert__isnull=False).values(
            "opened_from_alert"
        )
        return list(Alert.objects.filter(tenant=tenant).exclude(pk__in=used).order_by("-created_at")[:limit])

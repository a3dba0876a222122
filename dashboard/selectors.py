"""What the home page shows each role. Lists are of the organization's own work items (campaigns,
journeys, approvals, alerts, holds, disposal runs); every count over people (sends, opens, clicks,
bounces, expiring authorizations) goes through healthmail.disclosure."""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass
from functools import partial

from django.db.models import Count, Min
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.models import Alert
from campaigns.models import Campaign
from campaigns.selectors import PROGRESS_GROUPS, approvals_waiting, campaign_list
from consent.selectors import authorization_expiry_bands
from delivery.models import DeliveryReport, EngagementEvent, Message
from healthmail.disclosure import Disclosed, Viewer, disclose
from healthmail.tenants.models import Tenant
from journeys.models import Journey
from retention.models import DisposalRun, LegalHold

WINDOW_DAYS = 30
LISTED = 6
MARKETING_SOURCES = ("campaign", "journey")
ENGAGEMENT = (
    ("delivered", "Delivered"),
    ("opened", "Opened (first open)"),
    ("clicked", "Clicked (first click)"),
)
DELIVERABILITY = (
    ("delivered_tls", "Delivered over verified TLS"),
    ("delivered_portal", "Delivered through the secure portal"),
    ("bounced", "Bounced"),
    ("complaints", "Complaints"),
)


@dataclass
class Engagement:
    days: list[datetime.date]
    cells: dict[str, list[Disclosed]]

    def chart(self) -> dict:
        return {
            "labels": [day.isoformat() for day in self.days],
            "datasets": [
                {"label": label, "data": [c.value for c in self.cells[key]]} for key, label in ENGAGEMENT
            ],
        }

    def rows(self) -> list[tuple[datetime.date, list[str]]]:
        return [
            (day, [self.cells[key][i].display for key, _ in ENGAGEMENT]) for i, day in enumerate(self.days)
        ]


@dataclass
class MarketerDesk:
    recent: list[Campaign]
    scheduled: list[Campaign]
    journeys: list[Journey]
    engagement: Engagement
    deliverability: list[tuple[str, Disclosed]]

    def deliverability_chart(self) -> dict:
        return {
            "labels": [label for label, _ in self.deliverability],
            "data": [c.value for _, c in self.deliverability],
        }


@dataclass
class ComplianceDesk:
    approvals: list[Campaign]
    journeys_in_review: list[Journey]
    alerts: list[Alert]
    holds: list[LegalHold]
    overdue_hold_reviews: list[LegalHold]
    runs_due: list[DisposalRun]
    expiring: list[dict]

    def expiring_chart(self) -> dict:
        bands = (
            ("within_30", "Within 30 days"),
            ("within_60", "31 to 60 days"),
            ("within_90", "61 to 90 days"),
        )
        return {
            "labels": [label for _, label in bands],
            "datasets": [
                {"label": row["kind"], "data": [row[key].value for key, _ in bands]} for row in self.expiring
            ],
        }


def _window(tenant: Tenant, now: datetime.datetime) -> tuple[zoneinfo.ZoneInfo, list[datetime.date]]:
    zone = zoneinfo.ZoneInfo(tenant.timezone)
    today = timezone.localdate(now, timezone=zone)
    return zone, [today - datetime.timedelta(days=n) for n in range(WINDOW_DAYS - 1, -1, -1)]


def _first_events(tenant: Tenant, kind: str, since: datetime.datetime, zone) -> dict[datetime.date, int]:
    """Messages by the local day of their first human event of `kind` in the window."""
    firsts = (
        EngagementEvent.objects.for_tenant(tenant)
        .filter(source_type__in=MARKETING_SOURCES, kind=kind, is_bot=False, occurred_at__gte=since)
        .exclude(message__isnull=True)
        .values("message")
        .annotate(first=Min("occurred_at"))
        .values_list("first", flat=True)
    )
    days: dict[datetime.date, int] = {}
    for moment in firsts:
        day = moment.astimezone(zone).date()
        days[day] = days.get(day, 0) + 1
    return days


def _figure(tenant: Tenant, viewer: Viewer, sensitive: bool, count: int, cell: str) -> Disclosed:
    return disclose(count, tenant=tenant, viewer=viewer, query=f"dashboard#{cell}", sensitive=sensitive)


def marketer_desk(*, tenant: Tenant, viewer: Viewer, now: datetime.datetime | None = None) -> MarketerDesk:
    now = now or timezone.now()
    zone, days = _window(tenant, now)
    since = datetime.datetime.combine(days[0], datetime.time.min, tzinfo=zone)
    messages = Message.objects.for_tenant(tenant).filter(
        source_type__in=MARKETING_SOURCES, created_at__gte=since
    )
    # The window's figures are sensitive as soon as one message of it went to people chosen by
    # health information: then a viewer without PHI access gets them noisy and rounded.
    sensitive = messages.filter(uses_phi=True).exists()
    figure = partial(_figure, tenant, viewer, sensitive)
    delivered = dict(
        messages.filter(state__in=PROGRESS_GROUPS["delivered"], finished_at__gte=since)
        .annotate(day=TruncDate("finished_at", tzinfo=zone))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    counts = {
        "delivered": delivered,
        "opened": _first_events(tenant, EngagementEvent.Kind.OPEN, since, zone),
        "clicked": _first_events(tenant, EngagementEvent.Kind.CLICK, since, zone),
    }
    cells = {
        key: [figure(counts[key].get(day, 0), f"{key}:{day.isoformat()}") for day in days]
        for key, _ in ENGAGEMENT
    }
    states = dict(messages.values("state").annotate(n=Count("id")).values_list("state", "n"))
    complaints = (
        DeliveryReport.objects.for_tenant(tenant)
        .filter(kind=DeliveryReport.Kind.COMPLAINT, message__in=messages)
        .values("message")
        .distinct()
        .count()
    )
    raw = {
        "delivered_tls": states.get(Message.State.DELIVERED_TLS, 0),
        "delivered_portal": states.get(Message.State.DELIVERED_PORTAL, 0),
        "bounced": states.get(Message.State.BOUNCED, 0),
        "complaints": complaints,
    }
    campaigns = campaign_list(tenant=tenant)
    return MarketerDesk(
        recent=list(campaigns.exclude(status=Campaign.Status.SCHEDULED)[:LISTED]),
        scheduled=list(
            campaigns.filter(status=Campaign.Status.SCHEDULED).order_by("scheduled_for", "created_at")[
                :LISTED
            ]
        ),
        journeys=list(
            Journey.objects.filter(tenant=tenant, status=Journey.Status.ACTIVE).order_by("name")[:LISTED]
        ),
        engagement=Engagement(days=days, cells=cells),
        deliverability=[(label, figure(raw[key], f"deliverability:{key}")) for key, label in DELIVERABILITY],
    )


def compliance_desk(
    *, tenant: Tenant, role: str, viewer: Viewer, now: datetime.datetime | None = None
) -> ComplianceDesk:
    now = now or timezone.now()
    holds = list(
        LegalHold.objects.for_tenant(tenant).filter(status=LegalHold.Status.ACTIVE).order_by("created_at")
    )
    return ComplianceDesk(
        approvals=approvals_waiting(tenant=tenant, role=role),
        journeys_in_review=list(
            Journey.objects.filter(tenant=tenant, status=Journey.Status.IN_REVIEW).order_by("name")
        ),
        alerts=list(Alert.objects.for_tenant(tenant).filter(acknowledged_at__isnull=True)[:LISTED]),
        holds=holds,
        overdue_hold_reviews=[hold for hold in holds if hold.next_review_at <= now],
        runs_due=list(
            DisposalRun.objects.for_tenant(tenant).filter(status__in=DisposalRun.OPEN).order_by("planned_at")
        ),
        expiring=authorization_expiry_bands(tenant=tenant, viewer=viewer, figures=True),
    )

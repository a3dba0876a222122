"""What the home page shows each role. Lists are of the organization's own work items (campaigns,
journeys, approvals, alerts, holds, disposal runs); every count over people (sends, opens, clicks,
bounces, expiring authorizations) goes through healthmail.disclosure."""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass
from functools import partial

from django.db.models import Count
from django.utils import timezone

from audit.models import Alert
from campaigns.models import Campaign
from campaigns.reporting.series import SERIES, Series, daily_counts
from campaigns.selectors import approvals_waiting, campaign_list
from consent.selectors import authorization_expiry_bands
from delivery.models import DeliveryReport, EngagementEvent, Message
from healthmail.disclosure import Disclosed, Viewer, disclose
from healthmail.tenants.models import Tenant
from journeys.models import Journey
from retention.models import DisposalRun, LegalHold

WINDOW_DAYS = 30
LISTED = 6
MARKETING_SOURCES = ("campaign", "journey")
DELIVERABILITY = (
    ("delivered_tls", "Delivered over verified TLS"),
    ("delivered_portal", "Delivered through the secure portal"),
    ("bounced", "Bounced"),
    ("complaints", "Complaints"),
)


@dataclass
class MarketerDesk:
    recent: list[Campaign]
    scheduled: list[Campaign]
    journeys: list[Journey]
    engagement: Series
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
    counts = daily_counts(
        messages=messages.filter(finished_at__gte=since),
        events=EngagementEvent.objects.for_tenant(tenant).filter(
            source_type__in=MARKETING_SOURCES, occurred_at__gte=since
        ),
        zone=zone,
    )
    cells = {
        key: [figure(counts[key].get(day, 0), f"{key}:{day.isoformat()}") for day in days]
        for key, _ in SERIES
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
        engagement=Series(days=days, cells=cells),
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

"""Campaigns side by side: each one's totals as the viewer may see them, and rates computed only
from figures the policy released (a rate of a hidden count would reveal it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from healthmail.disclosure import Disclosed, Viewer
from healthmail.errors import NotFound
from healthmail.tenants.models import Tenant

from ..models import Campaign
from ..selectors import campaign_report

MAX_COMPARED = 8
COMPARED_METRICS = (
    ("sent", "Sent"),
    ("delivered_tls", "Delivered (verified TLS)"),
    ("delivered_portal", "Delivered (secure portal)"),
    ("bounced", "Bounced"),
    ("opens", "Opens (unique)"),
    ("clicks", "Clicks (unique)"),
    ("unsubscribes", "Unsubscribes"),
    ("complaints", "Complaints"),
)


@dataclass
class ComparedCampaign:
    campaign: Campaign
    cells: dict[str, Disclosed]
    open_rate: float | None
    click_rate: float | None


def _rate(part: Disclosed, whole: Disclosed) -> float | None:
    if part.value is None or not whole.value:
        return None
    return round(100 * part.value / whole.value, 1)


def compared_campaigns(*, tenant: Tenant, campaign_ids: list[str]) -> list[Campaign]:
    """The chosen campaigns of this tenant, or the latest launched ones; an id that is not one of
    the tenant's campaigns is NotFound (a foreign id answers like a missing one)."""
    found = Campaign.objects.for_tenant(tenant)
    if not campaign_ids:
        return list(found.filter(launched_at__isnull=False).order_by("-launched_at")[:MAX_COMPARED])
    if len(campaign_ids) > MAX_COMPARED:
        raise NotFound(f"Compare at most {MAX_COMPARED} campaigns at a time.")
    try:
        wanted = [uuid.UUID(str(value)) for value in campaign_ids]
    except ValueError:
        raise NotFound("No such campaign.") from None
    rows = {c.pk: c for c in found.filter(pk__in=wanted)}
    if len(rows) != len(set(wanted)):
        raise NotFound("No such campaign.")
    return [rows[pk] for pk in dict.fromkeys(wanted)]


def campaign_comparison(
    *, tenant: Tenant, campaigns: list[Campaign], viewer: Viewer
) -> list[ComparedCampaign]:
    compared = []
    for campaign in campaigns:
        totals = campaign_report(tenant=tenant, campaign=campaign, viewer=viewer)
        cells = {key: totals.values[key]["total"] for key, _ in COMPARED_METRICS}
        compared.append(
            ComparedCampaign(
                campaign=campaign,
                cells=cells,
                open_rate=_rate(cells["opens"], cells["sent"]),
                click_rate=_rate(cells["clicks"], cells["sent"]),
            )
        )
    return compared


def comparison_chart(compared: list[ComparedCampaign]) -> dict:
    return {
        "labels": [c.campaign.name for c in compared],
        "datasets": [
            {"label": "Open rate (%)", "data": [c.open_rate for c in compared]},
            {"label": "Click rate (%)", "data": [c.click_rate for c in compared]},
        ],
    }

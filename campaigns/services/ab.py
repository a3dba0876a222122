"""A/B tests: after the waiting time, the variant with the best rate on the winner metric wins and
the rest of the audience gets it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from delivery.models import Message
from delivery.tracking.selectors import engagement_summary
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Campaign, CampaignVariant, Metric
from .audience import NOT_SENT
from .history import transition_record
from .launch import SOURCE_TYPE, remainder_send

Status = Campaign.Status
SYSTEM = Actor.system("campaigns.ab")


@dataclass(frozen=True)
class VariantStats:
    key: str
    sent: int
    opens: int = 0
    clicks: int = 0
    conversions: int = 0

    def rate(self, metric: str) -> float:
        return getattr(self, metric) / self.sent if self.sent else 0.0


def choose_winner(stats: list[VariantStats], metric: str) -> str:
    """Highest rate wins; a tie goes to the larger count, then to the earlier variant (A before B)."""
    if metric not in Metric.values:
        raise ValueError(f"unknown metric {metric!r}")
    if not stats:
        raise ValueError("no variants")
    ranked = sorted(stats, key=lambda s: (-s.rate(metric), -getattr(s, metric), s.key))
    return ranked[0].key


def variant_stats(*, tenant: Tenant, campaign: Campaign) -> list[VariantStats]:
    """Per variant: messages that went out, unique human opens and clicks, conversions."""
    keys = list(
        CampaignVariant.objects.for_tenant(tenant).filter(campaign=campaign).values_list("key", flat=True)
    )
    sent = dict(
        Message.objects.for_tenant(tenant)
        .filter(source_type=SOURCE_TYPE, source_id=str(campaign.pk))
        .exclude(state__in=NOT_SENT)
        .values("variant")
        .annotate(n=Count("id"))
        .values_list("variant", "n")
    )
    engagement = engagement_summary(tenant=tenant, source_type=SOURCE_TYPE, source_id=str(campaign.pk))[
        "variants"
    ]
    return [
        VariantStats(
            key=key,
            sent=sent.get(key, 0),
            opens=engagement.get(key, {}).get("unique_opens", 0),
            clicks=engagement.get(key, {}).get("unique_clicks", 0),
            conversions=engagement.get(key, {}).get("conversions", 0),
        )
        for key in keys
    ]


def ab_due(campaign: Campaign, now: datetime.datetime) -> bool:
    return bool(
        campaign.ab_enabled
        and not campaign.ab_winner
        and campaign.ab_test_percent < 100
        and campaign.launched_at is not None
        and campaign.launched_at + datetime.timedelta(hours=campaign.ab_wait_hours) <= now
    )


@transaction.atomic
def campaign_ab_decide(
    *, tenant: Tenant, campaign_id, now: datetime.datetime | None = None
) -> Campaign | None:
    """Pick the winner and send the rest with it. Does nothing before the waiting time, while the
    campaign is paused (it runs again after resume), or once decided."""
    now = now or timezone.now()
    with tenant_context(tenant):
        campaign = (
            Campaign.objects.select_for_update(of=("self",))
            .select_related("topic", "sender_domain")
            .filter(pk=campaign_id, tenant=tenant)
            .first()
        )
        if campaign is None or campaign.status != Status.SENDING or not ab_due(campaign, now):
            return None
        stats = variant_stats(tenant=tenant, campaign=campaign)
        winner = choose_winner(stats, campaign.ab_winner_metric)
        Campaign.objects.filter(pk=campaign.pk).update(ab_winner=winner, ab_decided_at=now)
        campaign.ab_winner, campaign.ab_decided_at = winner, now
        outcome = remainder_send(tenant=tenant, campaign=campaign, variant=winner, now=now)
        transition_record(
            campaign=campaign,
            actor=SYSTEM,
            action="ab_winner",
            from_status=campaign.status,
            comment=f"Variant {winner} won on {campaign.ab_winner_metric}.",
            details={
                "winner": winner,
                "metric": campaign.ab_winner_metric,
                "stats": {
                    s.key: {"sent": s.sent, campaign.ab_winner_metric: getattr(s, campaign.ab_winner_metric)}
                    for s in stats
                },
                "remainder": dict(outcome),
            },
        )
    return campaign

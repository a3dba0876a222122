"""The campaigns reconciler: what the broker may have lost (a launch at its time, an A/B decision
after its wait) is found again in the database, and finished campaigns are marked sent."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field

from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Campaign
from .ab import ab_due


@dataclass
class Due:
    launch: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)  # (tenant id, campaign id)
    ab_decide: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    sending: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)


def campaigns_due(*, now: datetime.datetime) -> Due:
    due = Due()
    for tenant_id in Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("pk", flat=True):
        with tenant_context(tenant_id):
            campaigns = Campaign.objects.for_tenant(tenant_id).filter(
                status__in=[Campaign.Status.SCHEDULED, Campaign.Status.SENDING]
            )
            for campaign in campaigns.only(
                "id",
                "tenant_id",
                "status",
                "scheduled_for",
                "ab_enabled",
                "ab_winner",
                "ab_test_percent",
                "launched_at",
                "ab_wait_hours",
            ):
                pair = (tenant_id, campaign.pk)
                if campaign.status == Campaign.Status.SCHEDULED:
                    if campaign.scheduled_for is None or campaign.scheduled_for <= now:
                        due.launch.append(pair)
                elif ab_due(campaign, now):
                    due.ab_decide.append(pair)
                else:
                    due.sending.append(pair)
    return due

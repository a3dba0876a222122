"""Campaign tasks on the marketing queue: ids in, tenant context around the body, a service call.

The database is the record: a launch or an A/B decision whose task the broker loses is found by
the sweep (every minute) and run then.
"""

from __future__ import annotations

import datetime

from django.db import OperationalError
from django.utils import timezone

from healthmail.celery import app
from healthmail.tasks import enqueue, tenant_task
from healthmail.tenants.context import context_tenant_id
from healthmail.tenants.models import Tenant

from .models import Campaign
from .services import ab, launch, sweep

RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": 5, "retry_jitter": True, "max_retries": 5}


def _tenant() -> Tenant:
    return Tenant.objects.get(pk=context_tenant_id())


@tenant_task(queue="marketing", acks_late=True, soft_time_limit=270, time_limit=300, **RETRY)
def campaign_launch(campaign_id: str) -> None:
    launch.campaign_launch(tenant=_tenant(), campaign_id=campaign_id)


@tenant_task(queue="marketing", acks_late=True, soft_time_limit=270, time_limit=300, **RETRY)
def campaign_ab_decide(campaign_id: str) -> None:
    ab.campaign_ab_decide(tenant=_tenant(), campaign_id=campaign_id)


@tenant_task(queue="marketing", acks_late=True, soft_time_limit=50, time_limit=60)
def campaign_complete(campaign_id: str) -> None:
    launch.campaign_complete_if_done(tenant=_tenant(), campaign_id=campaign_id)


def _later(task, campaign: Campaign, eta: datetime.datetime) -> None:
    # After commit: the task must find the row as this transaction leaves it.
    enqueue(task, tenant=campaign.tenant_id, eta=eta, campaign_id=str(campaign.pk))


def launch_later(*, campaign: Campaign, eta: datetime.datetime) -> None:
    _later(campaign_launch, campaign, eta)


def ab_decide_later(*, campaign: Campaign, eta: datetime.datetime) -> None:
    _later(campaign_ab_decide, campaign, eta)


@app.task(
    name="campaigns.tasks.campaigns_sweep",
    queue="marketing",
    ignore_result=True,
    soft_time_limit=50,
    time_limit=60,
)
def campaigns_sweep() -> dict[str, int]:
    due = sweep.campaigns_due(now=timezone.now())
    for task, pairs in (
        (campaign_launch, due.launch),
        (campaign_ab_decide, due.ab_decide),
        (campaign_complete, due.sending),
    ):
        for tenant_id, campaign_id in pairs:
            task.apply_async(kwargs={"tenant_id": str(tenant_id), "campaign_id": str(campaign_id)})
    return {"launch": len(due.launch), "ab_decide": len(due.ab_decide), "sending": len(due.sending)}

"""Celery side of webhooks: ids in, one attempt, a retry scheduled on the row (and as a countdown)."""

from __future__ import annotations

import datetime
import uuid
from typing import cast

from django.utils import timezone

from healthmail.celery import app
from healthmail.tasks import tenant_task
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import WebhookDelivery
from . import services


@tenant_task(ignore_result=True, acks_late=True, soft_time_limit=60, time_limit=90)
def webhook_deliver(delivery_id: str) -> None:
    delivery = services.webhook_delivery_attempt(delivery_id=uuid.UUID(delivery_id))
    if delivery is None or delivery.state != WebhookDelivery.State.PENDING:
        return
    # A pending delivery always has its next attempt (webhook_delivery_attempt sets it).
    next_attempt_at = cast(datetime.datetime, delivery.next_attempt_at)
    delay = max(1, int((next_attempt_at - timezone.now()).total_seconds()))
    queue = "marketing" if delivery.stream == "marketing" else "transactional"
    webhook_deliver.apply_async(
        kwargs={"tenant_id": str(delivery.tenant_id), "delivery_id": delivery_id},
        countdown=delay,
        queue=queue,
    )


@app.task(
    name="delivery.webhooks.tasks.webhooks_sweep", ignore_result=True, soft_time_limit=50, time_limit=60
)
def webhooks_sweep() -> None:
    """Re-send due deliveries whose task the broker lost (Redis is not the queue of record)."""
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        with tenant_context(tenant_id):
            due = services.webhook_deliveries_due(tenant_id=tenant_id)
        for delivery_id in due:
            webhook_deliver.apply_async(kwargs={"tenant_id": str(tenant_id), "delivery_id": str(delivery_id)})

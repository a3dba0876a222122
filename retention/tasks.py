"""Retention tasks: ids in, a service does the work. Disposal batches are separate transactions, so
these tasks open the tenant context per batch (inside the services) instead of around the body."""

from __future__ import annotations

import logging
import time

from django.db import OperationalError

from healthmail.celery import app
from healthmail.tasks import enqueue
from healthmail.tenants.models import Tenant

from . import disposal, services

logger = logging.getLogger(__name__)
WORK_SECONDS = 200  # well inside the soft limit; the run continues in the next task


@app.task(
    queue="marketing",
    acks_late=True,
    ignore_result=True,
    soft_time_limit=270,
    time_limit=300,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_jitter=True,
    max_retries=5,
)
def disposal_run_work(tenant_id: str, run_id: str) -> None:
    """Destroy batches for a while, then hand over to a new task (a killed worker loses at most the
    open batch, which rolls back; the sweep re-enqueues runs whose heartbeat stopped)."""
    deadline = time.monotonic() + WORK_SECONDS
    while time.monotonic() < deadline:
        if not disposal.disposal_run_batch(tenant_id=tenant_id, run_id=run_id):
            return
    disposal_run_work.apply_async(kwargs={"tenant_id": tenant_id, "run_id": run_id})


@app.task(queue="marketing", ignore_result=True, soft_time_limit=3300, time_limit=3500)
def retention_daily_all() -> int:
    """Plan disposal, archive and remind hold reviews for every tenant; resume stalled runs."""
    done = 0
    for tenant in Tenant.objects.filter(status=Tenant.Status.ACTIVE):
        try:
            services.retention_daily(tenant=tenant)
            done += 1
        except OperationalError:
            logger.warning(
                "retention upkeep failed for a tenant; retried tomorrow", extra={"tenant": str(tenant.pk)}
            )
    for tenant_id, run_id in disposal.disposal_runs_stalled():
        enqueue(disposal_run_work, tenant=tenant_id, run_id=str(run_id))
    return done

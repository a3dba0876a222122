"""Import tasks: ids in, the tenant context around the body, one slice per run, then the next."""

from __future__ import annotations

from django.db import OperationalError

from healthmail.celery import app
from healthmail.errors import Conflict
from healthmail.tasks import enqueue, tenant_task
from healthmail.tenants.context import current_tenant_id

from . import services


# One slice is one transaction, well inside the time limit; the next slice is a new task, so other
# tenants' marketing work interleaves with a long import.
@tenant_task(
    queue="marketing",
    acks_late=True,
    soft_time_limit=240,
    time_limit=270,
    autoretry_for=(OperationalError, Conflict),  # Conflict: a concurrent upsert of the same contacts
    retry_backoff=5,
    retry_jitter=True,
    max_retries=5,
)
def import_job_run(job_id: str) -> None:
    if services.import_job_run_slice(job_id=job_id):
        enqueue(import_job_run, tenant=current_tenant_id(), job_id=job_id)


@app.task(queue="marketing", ignore_result=True, soft_time_limit=110, time_limit=120)
def import_jobs_sweep() -> dict[str, int]:
    """Shred week-old uploads; re-enqueue jobs whose task was lost (the database is the record)."""
    return services.import_jobs_sweep()

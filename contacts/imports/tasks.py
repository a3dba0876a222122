"""Import tasks: ids in, the tenant context around the body. One task prepares a job (a pass over
the file that cuts it into slices) and enqueues one task per slice; the marketing workers import
the slices in parallel, and other tenants' marketing work interleaves with a long import."""

from __future__ import annotations

from django.db import OperationalError

from healthmail.celery import app
from healthmail.errors import Conflict
from healthmail.tasks import enqueue, tenant_task
from healthmail.tenants.context import current_tenant_id

from . import services


@tenant_task(
    queue="marketing",
    acks_late=True,
    soft_time_limit=240,
    time_limit=270,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_jitter=True,
    max_retries=5,
)
def import_job_run(job_id: str) -> None:
    """Prepare the job (once) and enqueue its pending slices; the sweep calls it again for a job
    whose tasks were lost (slices already done or being imported are skipped by their tasks)."""
    for slice_id in services.import_job_prepare(job_id=job_id):
        enqueue(import_slice_run, tenant=current_tenant_id(), job_id=job_id, slice_id=str(slice_id))


# One slice is one transaction, well inside the time limit.
@tenant_task(
    queue="marketing",
    acks_late=True,
    soft_time_limit=240,
    time_limit=270,
    # OperationalError: e.g. a deadlock between two slices creating the same contacts in opposite
    # orders (the loser rolls back whole and comes back); Conflict: a concurrent upsert of the same
    # contacts that kept colliding.
    autoretry_for=(OperationalError, Conflict),
    retry_backoff=5,
    retry_jitter=True,
    max_retries=5,
)
def import_slice_run(job_id: str, slice_id: str) -> None:
    services.import_slice_run(slice_id=int(slice_id))


@app.task(queue="marketing", ignore_result=True, soft_time_limit=110, time_limit=120)
def import_jobs_sweep() -> dict[str, int]:
    """Shred week-old uploads; re-enqueue jobs whose task was lost (the database is the record)."""
    return services.import_jobs_sweep()

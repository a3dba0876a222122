"""Epoch-key rotation on a schedule (beat, HEALTHMAIL_EPOCH_ROTATE_SECONDS): every tenant's object
keys move to a fresh epoch key and the older epoch keys are destroyed, so content shredded since
the last run becomes unrecoverable from earlier database backups too (objects.py)."""

from __future__ import annotations

import logging

from healthmail.celery import app
from healthmail.tenants.models import Tenant

from .objects import epochs_rotate

logger = logging.getLogger(__name__)


@app.task(
    name="healthmail.crypto.tasks.epochs_rotate_all", acks_late=True, soft_time_limit=3300, time_limit=3600
)  # type: ignore[untyped-decorator]  # Celery has no types
def epochs_rotate_all() -> int:
    """Every tenant in turn; safe to run twice (a rerun re-wraps nothing and destroys nothing)."""
    destroyed = 0
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        result = epochs_rotate(tenant_id)
        destroyed += len(result.destroyed)
        logger.info(
            "crypto.epochs_rotated",
            extra={
                "tenant_id": str(tenant_id),
                "rewrapped": result.rewrapped,
                "destroyed": len(result.destroyed),
            },
        )
    return destroyed

"""Periodic upkeep of the API: expire Idempotency-Key records after 24 hours (beat, hourly)."""

from __future__ import annotations

import logging

from healthmail.celery import app

from .idempotency import idempotency_records_expire

logger = logging.getLogger("healthmail.api")


@app.task(name="healthmail.api.tasks.idempotency_expire", acks_late=True)  # type: ignore[untyped-decorator]  # Celery has no types
def idempotency_expire() -> int:
    """Sweeps every tenant in turn (each in its own tenant context); safe to run twice."""
    deleted = idempotency_records_expire()
    logger.info("api.idempotency_expired", extra={"deleted": deleted})
    return deleted

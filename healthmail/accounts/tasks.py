"""Periodic upkeep of accounts: SMART clients' JWK Sets fetched again before their cache expires
(beat, every SMART_JWKS_REFRESH_SECONDS; healthmail/accounts/smart_jwks.py)."""

from __future__ import annotations

import dataclasses
import logging

from healthmail.celery import app

from .smart_jwks import jwks_refresh_due

logger = logging.getLogger("healthmail.smart")


@app.task(name="healthmail.accounts.tasks.smart_jwks_refresh", acks_late=True)  # type: ignore[untyped-decorator]  # Celery has no types
def smart_jwks_refresh() -> dict[str, int]:
    """Refresh the JWK Sets due; safe to run twice (each client is claimed before its fetch)."""
    summary = dataclasses.asdict(jwks_refresh_due())
    logger.info("smart.jwks_refreshed", extra=summary)
    return summary

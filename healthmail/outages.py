"""PostgreSQL or Redis unreachable: what that looks like to a request, and the honest answer to it.

An outage is a 503 with Retry-After (problem+json under /api/, a short page elsewhere), never a 500:
the client did nothing wrong and may try again. The API's exception handler and the project's
handler500 both ask `is_outage()`; handler500 also sees errors raised by middleware (sessions,
authentication), which no view-level handler ever does.

Counters that only slow clients down (the API-key throttle, the bad-key counter) keep working while
Redis is down by counting in this process instead (`shared_or_local`): refusing every request because
a rate counter is unreachable would turn a Redis outage into an API outage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import kombu.exceptions
import redis.exceptions
from django.conf import settings
from django.core.cache import BaseCache, caches
from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)
T = TypeVar("T")

REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
# kombu's OperationalError is what Celery raises when it cannot reach the broker to send a task.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    kombu.exceptions.OperationalError,
    *REDIS_ERRORS,
)
OUTAGE_DETAIL = "The service is briefly unavailable. Nothing was lost; try again shortly."
OUTAGE_PAGE = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Service unavailable</title></head>"
    "<body><h1>Service unavailable</h1><p>HealthMail is briefly unavailable. Please try again in a minute."
    "</p></body></html>"
)


def is_outage(exc: BaseException | None) -> bool:
    """True when `exc` (or what it was raised from) says a backing service could not be reached."""
    seen = 0
    while exc is not None and seen < 5:  # DRF and Django sometimes wrap the original error
        if isinstance(exc, OUTAGE_ERRORS):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def retry_after_headers() -> dict[str, str]:
    return {"Retry-After": str(settings.OUTAGE_RETRY_AFTER_SECONDS)}


def log_outage(exc: BaseException) -> None:
    # The class only: a driver's message may name hosts or users.
    logger.warning("outage.request_refused", extra={"exception_type": type(exc).__qualname__})


def shared_or_local(operation: Callable[[BaseCache], T]) -> T:
    """Run a counter operation on the shared cache (Redis), or on this process's own cache while Redis
    is unreachable. Only for counters that limit rates: a local count is per process, so the limit
    applies per process (not fleet-wide) for as long as the outage lasts."""
    try:
        return operation(caches["default"])
    except REDIS_ERRORS:
        logger.warning("outage.counter_local", extra={"reason": "redis unreachable"})
        return operation(caches["local"])

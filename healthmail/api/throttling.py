"""The API's rate limit, per key, and what it tells the client (RateLimit-* headers before a 429).

`rate_limit_state()` only reads what DRF's throttle already keeps after deciding (its rate and the
request history of the window), so the headers follow whatever storage the throttle uses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from healthmail.outages import shared_or_local

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache
    from rest_framework.request import Request
    from rest_framework.views import APIView

    from healthmail.accounts.models import ApiKey


@dataclass(frozen=True)
class RateLimitState:
    limit: int  # requests allowed per window
    window: int  # seconds
    remaining: int  # requests left in the current window
    reset: int  # seconds until the window's oldest request leaves it (a slot frees); 0 only with none


class RateLimitedRequest(HttpRequest):
    """The Django request under a DRF one once the throttle has decided: RateLimitHeadersMiddleware
    (middleware.py) turns `rate_limit` into headers."""

    rate_limit: RateLimitState | None


def rate_limit_state(throttle: ApiKeyRateThrottle) -> RateLimitState | None:
    """The state `throttle` left after its last `allow_request`; None when no limit applies."""
    history = getattr(throttle, "history", None)
    if throttle.rate is None or history is None:
        return None
    remaining = max(0, throttle.num_requests - len(history))
    reset = 0
    if history:
        # DRF's window slides: the quota resets (a slot frees) when the oldest request in it (history
        # is newest first) leaves. Sent while requests remain too, as the IETF draft asks; at the 429
        # it is also Retry-After (ApiKeyRateThrottle.wait), so the two always agree.
        reset = max(1, math.ceil(throttle.duration - (throttle.now - history[-1])))
    return RateLimitState(
        limit=throttle.num_requests, window=throttle.duration, remaining=remaining, reset=reset
    )


def rate_limit_headers(state: RateLimitState) -> dict[str, str]:
    """IETF draft-ietf-httpapi-ratelimit-headers fields (the widely deployed three-field form)."""
    return {
        "RateLimit-Limit": str(state.limit),
        "RateLimit-Remaining": str(state.remaining),
        "RateLimit-Reset": str(state.reset),
    }


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per API key; unauthenticated calls are limited per client address.

    While Redis is unreachable the count is kept in this process (healthmail/outages.py): each process
    then allows the full rate, which is better than refusing every request over a rate counter.
    """

    scope = "api_key"
    rate_limit: RateLimitState | None  # what the last allow_request left (rate_limit_state)
    # Set by SimpleRateThrottle.__init__ from the rate (None when no rate applies, which
    # rate_limit_state checks first); the stubs do not declare them.
    num_requests: int
    duration: int

    def get_rate(self) -> str | None:
        # Read at call time, not import time (DRF's class attribute), so a changed setting applies.
        # The stubs type these rates as numbers; DRF's are text ("100/min").
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # type: ignore[return-value]

    def get_cache_key(self, request: Request, view: APIView) -> str:
        api_key = cast("ApiKey | None", request.auth)  # what ApiKeyAuthentication gives DRF
        ident = api_key.prefix if api_key is not None else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view: APIView) -> bool:
        def count(cache: BaseCache) -> bool:
            self.cache = cache
            return super(ApiKeyRateThrottle, self).allow_request(request, view)

        allowed = shared_or_local(count)
        # Kept on the Django request: RateLimitHeadersMiddleware adds the headers to whatever answer
        # follows (the view's, an error's, or the 429).
        self.rate_limit = rate_limit_state(self)
        cast(RateLimitedRequest, request._request).rate_limit = self.rate_limit
        return allowed

    def wait(self) -> float | None:
        """Retry-After of the 429: the RateLimit-Reset the same answer carries, by construction (DRF's
        own spreads the window over the slots missing, and gives none once a rate was lowered)."""
        state = getattr(self, "rate_limit", None)
        return state.reset if state is not None else super().wait()

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per API key; unauthenticated calls are limited per client address."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        # Read at call time, not import time (DRF's class attribute), so a changed setting applies.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        ident = request.auth.prefix if request.auth is not None else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from healthmail.outages import shared_or_local


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per API key; unauthenticated calls are limited per client address.

    While Redis is unreachable the count is kept in this process (healthmail/outages.py): each process
    then allows the full rate, which is better than refusing every request over a rate counter.
    """

    scope = "api_key"

    def get_rate(self) -> str | None:
        # Read at call time, not import time (DRF's class attribute), so a changed setting applies.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        ident = request.auth.prefix if request.auth is not None else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        def count(cache) -> bool:
            self.cache = cache
            return super(ApiKeyRateThrottle, self).allow_request(request, view)

        return shared_or_local(count)

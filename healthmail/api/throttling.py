from rest_framework.throttling import SimpleRateThrottle


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per API key; unauthenticated calls are limited per client address."""

    scope = "api_key"

    def get_cache_key(self, request, view):
        ident = request.auth.prefix if request.auth is not None else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

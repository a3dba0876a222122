"""API middleware: oversized bodies refused before anything reads them (413: problem+json for the API,
text elsewhere), and the rate-limit headers."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from .errors import is_api_request, problem_response
from .throttling import rate_limit_headers


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.REQUEST_BODY_MAX_BYTES_BY_PATH.get(request.path, settings.REQUEST_BODY_MAX_BYTES)
        if length > limit:
            detail = f"The request body may be at most {limit} bytes."
            if is_api_request(request):
                return problem_response(413, detail, code="body_too_large")
            return HttpResponse(detail, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class RateLimitHeadersMiddleware:
    """Every API answer that went through the rate limit says how much of it is left (RateLimit-*),
    so a client can slow down before it gets a 429 (which also carries Retry-After)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        state = getattr(request, "rate_limit", None)
        if state is not None:
            for name, value in rate_limit_headers(state).items():
                response[name] = value
        return response

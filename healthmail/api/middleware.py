"""Refuse oversized bodies before anything reads them (413, problem+json for the API)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class BodySizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.REQUEST_BODY_MAX_BYTES:
            return JsonResponse(
                {
                    "type": "about:blank",
                    "title": "Request body too large",
                    "status": 413,
                    "detail": f"The body may be at most {settings.REQUEST_BODY_MAX_BYTES} bytes.",
                },
                status=413,
                content_type="application/problem+json",
            )
        return self.get_response(request)

"""/t/o/<token>.gif and /t/c/<token>: no login, no session, no PHI. A bad token still gets the pixel
(nothing to learn from it) but no redirect."""

from __future__ import annotations

import base64

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.views.decorators.http import require_http_methods

from healthmail.observability import client_ip

from . import services
from .tokens import CLICK, OPEN, token_read

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store, private"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _agent(request: HttpRequest) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:400]


@require_http_methods(["GET", "HEAD"])
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    parsed = token_read(token)
    if parsed is not None and parsed.kind == OPEN:
        services.engagement_record(
            token=parsed,
            user_agent=_agent(request),
            ip=client_ip(request),
            method=str(request.method),  # GET or HEAD (require_http_methods)
        )
    return _no_store(HttpResponse(PIXEL, content_type="image/gif"))


@require_http_methods(["GET", "HEAD"])
def click(request: HttpRequest, token: str) -> HttpResponse:
    parsed = token_read(token)
    url = None
    if parsed is not None and parsed.kind == CLICK:
        _, url = services.engagement_record(
            token=parsed,
            user_agent=_agent(request),
            ip=client_ip(request),
            method=str(request.method),  # GET or HEAD (require_http_methods)
        )
    if not url:
        return _no_store(HttpResponseNotFound("This link is not valid.", content_type="text/plain"))
    return _no_store(HttpResponseRedirect(url))

"""`Cache-Control: no-store` on every answer that may carry PHI: every API answer and every page
served to a signed-in person. No browser, proxy or shared cache keeps a copy (HIPAA 164.312(a)).

Views that set their own Cache-Control keep it, with no-store added. Static files (WhiteNoise,
earlier in the chain) and anonymous pages stay cacheable."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

from healthmail.api.errors import is_api_request


def may_carry_phi(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return is_api_request(request) or bool(user is not None and user.is_authenticated)


class NoStoreMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if may_carry_phi(request):
            patch_cache_control(response, no_store=True)
        return response

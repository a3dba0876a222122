"""The OAuth 2.0 token endpoint of SMART Backend Services (`POST /api/oauth/token`).

A form post (RFC 6749 §4.4) with a signed client assertion (RFC 7523); answers are OAuth JSON, not
problem+json, because that is what OAuth client libraries read. The rules live in
healthmail.accounts.smart."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from healthmail.accounts.smart import SmartRefused, smart_token_issue
from healthmail.observability import request_meta

FORM = "application/x-www-form-urlencoded"


def token_endpoint_url(request: HttpRequest) -> str:
    """The `aud` every client assertion must carry."""
    return request.build_absolute_uri(reverse("smart-token"))


def _error(error: str, description: str, status: int) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="healthmail", error="invalid_client"'
    if status == 429:
        response["Retry-After"] = str(settings.API_KEY_FAILURE_WINDOW_SECONDS)
    return response


@csrf_exempt  # no cookies: the caller proves itself with the signed assertion
@require_POST
def token(request: HttpRequest) -> JsonResponse:
    if request.content_type != FORM:
        return _error("invalid_request", f"Send the request as {FORM}.", 400)
    form = request.POST
    try:
        issued = smart_token_issue(
            grant_type=form.get("grant_type", ""),
            assertion_type=form.get("client_assertion_type", ""),
            assertion=form.get("client_assertion", ""),
            scope=form.get("scope", ""),
            audience=token_endpoint_url(request),
            ip_address=request_meta().client_ip,
        )
    except SmartRefused as refusal:
        return _error(refusal.error, str(refusal), refusal.status)
    return JsonResponse(
        {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }
    )

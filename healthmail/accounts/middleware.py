"""Session security for people: sign-in and MFA before anything, idle and absolute timeouts.

Every path not listed as open requires a signed-in user whose session passed TOTP verification.
API paths authenticate with API keys instead (healthmail.web.middleware).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from healthmail import audit_trail as audit
from healthmail.actors import Actor
from healthmail.api_paths import API_PREFIXES
from healthmail.tenants.models import Tenant

# Reachable without a session: sign-in, health, static files, the API (own auth), public patient pages,
# tracking pixels and click redirects (/t/: opaque signed tokens, no PHI).
OPEN_PREFIXES = (
    "/login/",
    "/invite/",
    "/healthz",
    "/metrics",
    "/static/",
    *API_PREFIXES,
    "/p/",
    "/t/",
    "/favicon.ico",
)
# Reachable signed in but before MFA verification.
MFA_PREFIXES = ("/mfa/", "/logout/")

SESSION_AUTH_AT = "auth_at"
SESSION_LAST_SEEN = "last_seen"
SESSION_TENANT = "tenant_id"
DEFAULT_IDLE_MINUTES = 15


def _idle_limit_seconds(request: HttpRequest) -> int:
    tenant_id = request.session.get(SESSION_TENANT)
    minutes = DEFAULT_IDLE_MINUTES
    if tenant_id:
        found = Tenant.objects.filter(pk=tenant_id).values_list("idle_timeout_minutes", flat=True).first()
        minutes = found or DEFAULT_IDLE_MINUTES
    return minutes * 60


class SessionSecurityMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path.startswith(OPEN_PREFIXES):
            return self.get_response(request)
        user = request.user
        if not user.is_authenticated:
            return redirect(f"{settings.LOGIN_URL}?{urlencode({'next': request.get_full_path()})}")
        expired = self._expired(request)
        if expired:
            audit.record(actor=Actor.for_user(user), action="session.expire", reason=expired)
            logout(request)
            messages.info(request, expired)
            return redirect(settings.LOGIN_URL)
        request.session[SESSION_LAST_SEEN] = int(time.time())
        if not user.is_verified() and not path.startswith(MFA_PREFIXES):
            return redirect("accounts:mfa_verify")
        return self.get_response(request)

    def _expired(self, request: HttpRequest) -> str:
        now = time.time()
        auth_at = request.session.get(SESSION_AUTH_AT, 0)
        if now - auth_at > settings.SESSION_ABSOLUTE_LIFETIME_SECONDS:
            return "Your session reached its maximum length. Please sign in again."
        last_seen = request.session.get(SESSION_LAST_SEEN, auth_at)
        limit = _idle_limit_seconds(request)
        if now - last_seen > limit:
            return f"You were signed out after {limit // 60} minutes without activity."
        return ""

"""Runs each request in one transaction scoped to its tenant.

People: the tenant is the session's chosen membership. API clients: the tenant of their key.
A response of 500 or more rolls the transaction back, so a crash never leaves a half-done write.
"""

from __future__ import annotations

from contextlib import nullcontext

from django.db import transaction
from django.http import HttpRequest, HttpResponse

from healthmail.accounts.api_keys import ApiKeyRejected, api_key_authenticate
from healthmail.accounts.membership import resolve_membership
from healthmail.accounts.roles import PLATFORM_ADMIN
from healthmail.observability import request_meta

from .context import tenant_context


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.tenant = None
        request.membership = None
        request.role = None
        request.api_key = None
        request.api_key_error = ""
        with transaction.atomic():
            if request.path.startswith("/api/"):
                self._authenticate_api_key(request)
            elif getattr(request, "user", None) is not None and request.user.is_authenticated:
                self._resolve_person(request)
            scope = tenant_context(request.tenant) if request.tenant is not None else nullcontext()
            with scope:
                response = self.get_response(request)
                if response.status_code >= 500:
                    transaction.set_rollback(True)
        return response

    def _authenticate_api_key(self, request: HttpRequest) -> None:
        header = request.headers.get("Authorization", "")
        if not header:
            return
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            request.api_key_error = "Use the header `Authorization: Bearer <key>`."
            return
        try:
            api_key = api_key_authenticate(presented.strip(), ip_address=request_meta().client_ip)
        except ApiKeyRejected as rejection:
            request.api_key_error = str(rejection)
            return
        request.api_key = api_key
        request.tenant = api_key.tenant

    def _resolve_person(self, request: HttpRequest) -> None:
        if not request.user.is_verified():
            return
        membership = resolve_membership(request)
        if membership is not None:
            request.membership = membership
            request.tenant = membership.tenant
            request.role = membership.role
        elif request.user.is_platform_admin:
            request.role = PLATFORM_ADMIN

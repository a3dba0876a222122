"""Runs each request in one transaction scoped to its tenant.

People: the tenant is the session's chosen membership. API clients: the tenant of their key.
A response of 500 or more rolls the transaction back, so a crash never leaves a half-done write.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from healthmail import audit_trail as audit
from healthmail.accounts.api_keys import ApiKeyRejected, ApiKeyThrottled, api_key_authenticate
from healthmail.accounts.membership import resolve_membership
from healthmail.accounts.roles import PLATFORM_ADMIN
from healthmail.actors import Actor
from healthmail.api_paths import is_api_path
from healthmail.crypto import access as phi_gate
from healthmail.crypto.rowkeys import key_scope
from healthmail.observability import request_meta
from healthmail.tenants.context import tenant_context

if TYPE_CHECKING:
    from healthmail.accounts.models import ApiKey, Membership, User
    from healthmail.tenants.models import Tenant


class ScopedRequest(HttpRequest):
    """Only a type: the request as this middleware leaves it, each attribute None (or empty) until
    resolved (the access decorators then guarantee what healthmail.accounts.requests.TenantRequest says)."""

    tenant: Tenant | None
    membership: Membership | None
    memberships: list[Membership]
    role: str | None
    api_key: ApiKey | None
    api_key_error: str
    api_key_throttled: bool  # set only when a presented key was refused


class TenantMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: ScopedRequest) -> HttpResponse:
        request.tenant = None
        request.membership = None
        request.role = None
        request.api_key = None
        request.api_key_error = ""
        with transaction.atomic():
            if is_api_path(request.path):
                self._authenticate_api_key(request)
            elif getattr(request, "user", None) is not None and request.user.is_authenticated:
                self._resolve_person(request, request.user)
                refusal = self._refuse_if_suspended(request)
                if refusal is not None:
                    return refusal
            scope = tenant_context(request.tenant) if request.tenant is not None else nullcontext()
            # While serving a person or API client, PHI decrypts only inside an audited phi_access().
            # Keys unwrapped while serving it are cached for this request only (rowkeys.py).
            with scope, phi_gate.guarded(), key_scope():
                response = self.get_response(request)
                if response.status_code >= 500:
                    transaction.set_rollback(True)
        return response

    def _refuse_if_suspended(self, request: ScopedRequest) -> HttpResponse | None:
        """A member of a suspended tenant sees why on every page but sign-out and the switcher."""
        tenant = request.tenant
        if request.membership is None or tenant is None or tenant.is_active:
            return None
        if request.path in (reverse("accounts:logout"), reverse("accounts:switch_tenant")):
            return None
        audit.record(
            actor=Actor.for_user(request.user),
            action="tenant.access",
            tenant=tenant,
            outcome=audit.DENIED,
            reason="tenant suspended",
        )
        request.role = None  # the page offers no links into the suspended tenant
        return render(request, "accounts/tenant_suspended.html", {"suspended_tenant": tenant}, status=403)

    def _authenticate_api_key(self, request: ScopedRequest) -> None:
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
            request.api_key_throttled = isinstance(rejection, ApiKeyThrottled)
            return
        request.api_key = api_key
        request.tenant = api_key.tenant

    def _resolve_person(self, request: ScopedRequest, user: User) -> None:
        if not user.is_verified():
            return
        membership, request.memberships = resolve_membership(request.session, user)
        if membership is not None:
            request.membership = membership
            request.tenant = membership.tenant
            request.role = membership.role
        elif user.is_platform_admin:
            request.role = PLATFORM_ADMIN

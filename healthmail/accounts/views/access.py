"""The few access helpers every accounts page uses: who is asking, may they, and refusals."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audit import services as audit
from audit.actors import Actor
from audit.models import AuditEvent
from healthmail.accounts.roles import role_can
from healthmail.observability import client_ip
from healthmail.tenants.models import Tenant


class TenantRequest(HttpRequest):
    """What the middleware adds to a signed-in member's request, for views that type it (the fix the
    mypy baseline names: annotate `request: TenantRequest` instead of HttpRequest)."""

    tenant: Tenant
    role: str


def actor_of(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user)


def ip_of(request: HttpRequest) -> str | None:
    return client_ip(request)


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "accounts/forbidden.html", {"message": message}, status=403)


def access_denied_record(request: HttpRequest, *, reason: str, view_name: str) -> None:
    """The audit event of every refused page (`authz.denied`): the one place its shape is written."""
    audit.record(
        actor=actor_of(request),
        action="authz.denied",
        outcome=AuditEvent.Outcome.DENIED,
        tenant=request.tenant,
        reason=reason,
        details={"view": view_name},
    )


def access_denied(
    request: HttpRequest, *, reason: str, view_name: str, message: str = "Your role does not allow this page."
) -> HttpResponse:
    """Refuse a page: audited, then 403 with the message."""
    access_denied_record(request, reason=reason, view_name=view_name)
    return forbidden(request, message)


def require_any_permission(*permissions: str) -> Callable:
    """Refuse (403, audited) unless the request's role holds one of the permissions in its tenant."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not any(role_can(request.role, permission) for permission in permissions):
                return access_denied(request, reason=" or ".join(permissions), view_name=view.__name__)
            return view(request, *args, **kwargs)

        return guarded

    return decorator


def require_permission(permission: str) -> Callable:
    """Refuse (403, audited) unless the request's role holds the permission in its current tenant."""
    return require_any_permission(permission)


def no_store(response: HttpResponse) -> HttpResponse:
    """For pages that show a secret once (backup codes, a new API key): never cached, anywhere."""
    response["Cache-Control"] = "no-store"
    return response

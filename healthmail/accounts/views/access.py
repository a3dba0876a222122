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


def actor_of(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user)


def ip_of(request: HttpRequest) -> str | None:
    return client_ip(request)


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "accounts/forbidden.html", {"message": message}, status=403)


def require_permission(permission: str) -> Callable:
    """Refuse (403, audited) unless the request's role holds the permission in its current tenant."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not role_can(request.role, permission):
                audit.record(
                    actor=actor_of(request),
                    action="authz.denied",
                    outcome=AuditEvent.Outcome.DENIED,
                    tenant=request.tenant,
                    reason=permission,
                    details={"view": view.__name__},
                )
                return forbidden(request, "Your role does not allow this page.")
            return view(request, *args, **kwargs)

        return guarded

    return decorator


def no_store(response: HttpResponse) -> HttpResponse:
    """For pages that show a secret once (backup codes, a new API key): never cached, anywhere."""
    response["Cache-Control"] = "no-store"
    return response

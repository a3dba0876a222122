"""The few access helpers every accounts page uses: who is asking, may they, and refusals."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Concatenate, ParamSpec, TypeVar

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render

from healthmail import audit_trail as audit
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import role_can
from healthmail.actors import Actor
from healthmail.observability import client_ip


def actor_of(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user)


def ip_of(request: HttpRequest) -> str | None:
    return client_ip(request)


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "accounts/forbidden.html", {"message": message}, status=403)


def access_denied_record(request: TenantRequest, *, reason: str, view_name: str) -> None:
    """The audit event of every refused page (`authz.denied`): the one place its shape is written."""
    audit.record(
        actor=actor_of(request),
        action="authz.denied",
        outcome=audit.DENIED,
        tenant=request.tenant,
        reason=reason,
        details={"view": view_name},
    )


def access_denied(
    request: TenantRequest,
    *,
    reason: str,
    view_name: str,
    message: str = "Your role does not allow this page.",
) -> HttpResponse:
    """Refuse a page: audited, then 403 with the message."""
    access_denied_record(request, reason=reason, view_name=view_name)
    return forbidden(request, message)


_Params = ParamSpec("_Params")
_Request = TypeVar("_Request", bound=TenantRequest)
# A page view: the request the middleware dressed, then its URL arguments; any response, a streamed
# download included.
View = Callable[Concatenate[_Request, _Params], HttpResponseBase]


def require_any_permission(
    *permissions: str,
) -> Callable[[View[_Request, _Params]], View[_Request, _Params]]:
    """Refuse (403, audited) unless the request's role holds one of the permissions in its tenant."""

    def decorator(view: View[_Request, _Params]) -> View[_Request, _Params]:
        @wraps(view)
        def guarded(request: _Request, /, *args: _Params.args, **kwargs: _Params.kwargs) -> HttpResponseBase:
            if not any(role_can(request.role, permission) for permission in permissions):
                return access_denied(request, reason=" or ".join(permissions), view_name=view.__name__)
            return view(request, *args, **kwargs)

        return guarded

    return decorator


def require_permission(permission: str) -> Callable[[View[_Request, _Params]], View[_Request, _Params]]:
    """Refuse (403, audited) unless the request's role holds the permission in its current tenant."""
    return require_any_permission(permission)


_Response = TypeVar("_Response", bound=HttpResponseBase)


def no_store(response: _Response) -> _Response:
    """For pages that show a secret once (backup codes, a new API key): never cached, anywhere."""
    response["Cache-Control"] = "no-store"
    return response

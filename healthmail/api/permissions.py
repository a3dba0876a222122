"""Who may call an API operation: a valid key (checked by TenantMiddleware) holding the scopes the
operation declares. `HasScopes` is the default permission, so a view that declares nothing is
refused rather than open."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rest_framework import permissions

from healthmail import audit_trail as audit
from healthmail.actors import Actor

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView

    from healthmail.accounts.models import ApiKey


class HasApiKey(permissions.BasePermission):
    message = "Authenticate with `Authorization: Bearer <key>`."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.auth is not None


def declared_scopes(view: APIView, method: str) -> list[str] | None:
    """The scopes `view` declares for `method`; None when it declares none (refused)."""
    method = "GET" if method == "HEAD" else method
    return getattr(view, "required_scopes", {}).get(method)


class HasScopes(HasApiKey):
    """Views declare `required_scopes = {"GET": ["contacts:read"], "POST": [...]}`; `[]` means any
    valid key may call it (deliberately, e.g. /me)."""

    message = "This API key lacks the scope this operation needs."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not super().has_permission(request, view):
            return False
        method = request.method or ""
        if method == "OPTIONS" or not hasattr(view, method.lower()):
            return True  # no operation runs: DRF answers the metadata or 405
        needed = declared_scopes(view, method)
        if needed is None:
            self.message = "This operation is not open to API keys."
            return self._refuse(request, view, "operation declares no scopes", [])
        api_key = cast("ApiKey", request.auth)
        missing = sorted(set(needed) - set(api_key.scopes))
        if missing:
            self.message = f"This API key lacks the scope this operation needs: {', '.join(missing)}."
            return self._refuse(request, view, "missing scope", missing)
        return True

    def _refuse(self, request: Request, view: APIView, reason: str, missing: list[str]) -> bool:
        api_key = cast("ApiKey", request.auth)
        audit.record(
            actor=Actor.for_api_key(api_key),
            action="api_key.scope_denied",
            target=api_key,
            tenant=api_key.tenant_id,
            outcome=audit.DENIED,
            reason=reason,
            details={"operation": f"{request.method} {type(view).__name__}", "missing_scopes": missing},
        )
        return False

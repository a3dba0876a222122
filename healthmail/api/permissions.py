from rest_framework import permissions


class HasApiKey(permissions.BasePermission):
    message = "Authenticate with `Authorization: Bearer <key>`."

    def has_permission(self, request, view) -> bool:
        return request.auth is not None


class HasScopes(HasApiKey):
    """Views declare `required_scopes = {"GET": ["contacts:read"], "POST": [...]}`."""

    message = "This API key lacks the scope this operation needs."

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        needed = getattr(view, "required_scopes", {}).get(request.method, None)
        if needed is None:
            return False  # an operation without declared scopes is refused, never open
        return set(needed) <= set(request.auth.scopes)

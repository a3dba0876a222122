from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from healthmail.accounts.roles import HOME_TITLES, PERMISSIONS, role_can

# "legal_holds_manage" → "legal_holds.manage": the dot is not always after the first underscore.
_BY_ATTRIBUTE = {permission.replace(".", "_"): permission for permission in PERMISSIONS}


class _Permissions:
    """Lets templates ask `{% if can.campaigns_edit %}` (dots become underscores)."""

    def __init__(self, role: str | None) -> None:
        self.role = role

    def __getattr__(self, name: str) -> bool:
        return role_can(self.role, _BY_ATTRIBUTE.get(name, ""))


def tenant(request: HttpRequest) -> dict[str, Any]:
    role = getattr(request, "role", None)
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_role": role,
        "role_title": HOME_TITLES.get(role or "", ""),
        "memberships": getattr(request, "memberships", []),
        "can": _Permissions(role),
    }

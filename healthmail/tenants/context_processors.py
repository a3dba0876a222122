from healthmail.accounts.roles import HOME_TITLES, role_can


class _Permissions:
    """Lets templates ask `{% if can.campaigns_edit %}` (dots become underscores)."""

    def __init__(self, role):
        self.role = role

    def __getattr__(self, name: str) -> bool:
        return role_can(self.role, name.replace("_", ".", 1))


def tenant(request):
    role = getattr(request, "role", None)
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_role": role,
        "role_title": HOME_TITLES.get(role, ""),
        "memberships": getattr(request, "memberships", []),
        "can": _Permissions(role),
    }

"""Which tenant a signed-in person is working in, and the tenant switcher."""

from __future__ import annotations

from healthmail.tenants.context import user_context

from .middleware import SESSION_TENANT
from .models import Membership, User
from .requests import TenantRequest


def memberships_of(user: User) -> list[Membership]:
    """Active memberships across tenants (visible through the `app.user_id` lookup policy)."""
    with user_context(user.pk):
        return list(
            Membership.objects.filter(user=user, is_active=True)
            .select_related("tenant")
            .order_by("tenant__name")
        )


def resolve_membership(request: TenantRequest) -> Membership | None:
    """The session's chosen membership, else the first; None when the user belongs nowhere. Sets
    `request.memberships` (the tenant switcher's list) as it goes."""
    memberships = memberships_of(request.user)
    request.memberships = memberships
    chosen = request.session.get(SESSION_TENANT)
    for membership in memberships:
        if str(membership.tenant_id) == chosen:
            return membership
    if not memberships:
        return None
    request.session[SESSION_TENANT] = str(memberships[0].tenant_id)
    return memberships[0]

"""Which tenant a signed-in person is working in, and the tenant switcher."""

from __future__ import annotations

from typing import TYPE_CHECKING

from healthmail.tenants.context import user_context

from .middleware import SESSION_TENANT
from .models import Membership, User

if TYPE_CHECKING:
    from django.contrib.sessions.backends.base import SessionBase


def memberships_of(user: User) -> list[Membership]:
    """Active memberships across tenants (visible through the `app.user_id` lookup policy)."""
    with user_context(user.pk):
        return list(
            Membership.objects.filter(user=user, is_active=True)
            .select_related("tenant")
            .order_by("tenant__name")
        )


def resolve_membership(session: SessionBase, user: User) -> tuple[Membership | None, list[Membership]]:
    """The session's chosen membership, else the first (None when the user belongs nowhere), with
    the user's memberships (the tenant switcher's list)."""
    memberships = memberships_of(user)
    chosen = session.get(SESSION_TENANT)
    for membership in memberships:
        if str(membership.tenant_id) == chosen:
            return membership, memberships
    if not memberships:
        return None, memberships
    session[SESSION_TENANT] = str(memberships[0].tenant_id)
    return memberships[0], memberships

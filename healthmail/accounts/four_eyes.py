"""Four eyes: the one rule for every decision that needs a second person.

Campaign reviews (compliance, clinical) and retention decisions (disposal runs, policy versions,
retention exceptions, legal hold approval and release) all call `second_person_require` with the
people who asked for or wrote what is decided (`authors`) and the permission a second person needs.

- The approver is not one of the authors: approved.
- The approver is an author and another active member with that permission, who is not an author
  either, exists: refused; that member must decide.
- The approver is an author and nobody uninvolved holds the permission (typically a tenant with one
  compliance officer): the "sole officer" path, where the decision allows it (campaigns never do).
  The approver must say why no second person can decide; the reason goes into the decision's audit
  event and record, and a destruction certificate prints it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from healthmail.errors import ApplicationError, PermissionRefused
from healthmail.tenants.models import Tenant

from .models import Membership
from .roles import PERMISSIONS, Role


@dataclass(frozen=True)
class SecondPerson:
    """How a decision met four eyes: by another person, or by the sole officer with a reason."""

    sole_officer_reason: str = ""

    @property
    def sole_officer(self) -> bool:
        return bool(self.sole_officer_reason)

    def as_details(self) -> dict[str, object]:
        return {"sole_officer": self.sole_officer, "sole_officer_reason": self.sole_officer_reason}


def _user_id(person: object) -> object:
    return getattr(person, "pk", person)


def _who(permission: str) -> str:
    roles = sorted(
        Role(role).label.lower() for role in PERMISSIONS.get(permission, ()) if role in Role.values
    )
    return " or ".join(roles) or "person"


def others_who_may_approve(*, tenant: Tenant, permission: str, excluding: Iterable[object]) -> int:
    """Active members of the tenant, other than `excluding`, whose role grants `permission`."""
    roles = PERMISSIONS.get(permission, frozenset())
    return (
        Membership.objects.filter(tenant=tenant, role__in=roles, is_active=True, user__is_active=True)
        .exclude(user_id__in=[_user_id(p) for p in excluding if p is not None])
        .count()
    )


def second_person_require(
    *,
    tenant: Tenant,
    approver: object,
    authors: Iterable[object],
    permission: str,
    what: str,
    sole_officer_reason: str = "",
    sole_officer_allowed: bool = True,
    code: str = "second_person",
) -> SecondPerson:
    """Refuse unless `approver` is a second person for this decision (see the module docstring)."""
    if approver is None:
        raise PermissionRefused(f"Only a person can approve this {what}.", code="approver_required")
    authors = [a for a in authors if a is not None]
    if _user_id(approver) not in {_user_id(a) for a in authors}:
        return SecondPerson()
    if not sole_officer_allowed:
        raise PermissionRefused(f"You cannot approve your own {what}.", code=code)
    if others_who_may_approve(tenant=tenant, permission=permission, excluding=[approver, *authors]):
        raise PermissionRefused(
            f"Another {_who(permission)} must approve this {what}: you asked for or wrote it.", code=code
        )
    reason = sole_officer_reason.strip()
    if not reason:
        raise ApplicationError(
            f"You asked for or wrote this {what} and nobody else in the organization may approve it. "
            "To approve it alone, say why no second person can (the reason is recorded in the audit "
            "trail and printed on destruction certificates).",
            code="sole_officer_reason",
        )
    return SecondPerson(reason[:1000])

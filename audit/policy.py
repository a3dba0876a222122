"""Each tenant decides who, besides its compliance officers, reviews its audit trail, and how long the
trail is kept (never below the legal minimum)."""

from __future__ import annotations

from django.db import transaction

from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context

from . import services
from .models import AuditPolicy


def audit_policy(*, tenant) -> AuditPolicy:
    with tenant_context(tenant):
        return AuditPolicy.objects.filter(tenant=tenant).first() or AuditPolicy(tenant=tenant)


def may_review_audit(*, tenant, role: str | None) -> bool:
    if tenant is None or role is None:
        return False
    return role == Role.COMPLIANCE_OFFICER or role in audit_policy(tenant=tenant).reviewer_roles


@transaction.atomic
def audit_policy_update(
    *, actor: Actor, tenant, reviewer_roles: list[str], retention_years: int
) -> AuditPolicy:
    unknown = set(reviewer_roles) - set(Role.values)
    if unknown:
        raise ApplicationError("Unknown roles: " + ", ".join(sorted(unknown)), code="roles")
    if retention_years < AuditPolicy.LEGAL_MINIMUM_YEARS:
        raise ApplicationError(
            f"The audit trail must be kept at least {AuditPolicy.LEGAL_MINIMUM_YEARS} years "
            "(HIPAA 45 CFR 164.316(b)(2)(i)).",
            code="retention_minimum",
        )
    with tenant_context(tenant):
        policy, _ = AuditPolicy.objects.select_for_update().get_or_create(tenant=tenant)
        policy.reviewer_roles = sorted(set(reviewer_roles) - {Role.COMPLIANCE_OFFICER})
        policy.retention_years = retention_years
        policy.updated_by = actor.user
        policy.save()
        services.record(
            actor=actor,
            action="audit.policy_change",
            target=policy,
            tenant=tenant,
            details={"reviewer_roles": policy.reviewer_roles, "retention_years": retention_years},
        )
    return policy

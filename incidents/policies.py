"""Policy acknowledgements per user (45 CFR 164.316: policies documented and made available to those
who implement them; 164.308(a)(5) security awareness): admins publish a policy's text as a numbered
version, every active member acknowledges the current version, compliance sees who has not.

A new text is a new version: acknowledgements of the older one no longer count, so everyone is asked
again. Versions and acknowledgements are append-only rows; each write is audited."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Max

from audit import services as audit
from healthmail.accounts.models import Membership
from healthmail.accounts.roles import role_can
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict, PermissionRefused
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import Policy, PolicyAcknowledgement, PolicyVersion

MANAGE = "policies.manage"
VIEW = "policies.view_acknowledgements"
MIN_TEXT_CHARS = 20


@transaction.atomic
def policy_publish(*, tenant: Tenant, user, role: str | None, title: str, text: str) -> PolicyVersion:
    """Publish `text` as the next version of the policy titled `title` (its first when new)."""
    if not role_can(role, MANAGE):
        raise PermissionRefused("Only the organization's admins publish policies.")
    title, text = title.strip(), text.strip()
    if not title:
        raise ApplicationError("Give the policy a title.", code="title")
    if len(text) < MIN_TEXT_CHARS:
        raise ApplicationError(
            f"Write the policy's text (at least {MIN_TEXT_CHARS} characters).", code="text"
        )
    with tenant_context(tenant):
        policy, _ = Policy.objects.get_or_create(tenant=tenant, title=title)
        Policy.objects.select_for_update().get(pk=policy.pk)  # one publisher numbers at a time
        last = PolicyVersion.objects.filter(tenant=tenant, policy=policy).aggregate(n=Max("number"))["n"]
        version = PolicyVersion.objects.create(
            tenant=tenant, policy=policy, number=(last or 0) + 1, text=text, published_by=user
        )
        audit.record(
            actor=Actor.for_user(user),
            action="policy.publish",
            target=version,
            tenant=tenant,
            details={"policy": str(policy.pk), "version": version.number},
        )
    return version


def current_versions(*, tenant: Tenant) -> list[PolicyVersion]:
    """Each policy's newest version (call inside the tenant context)."""
    return list(
        PolicyVersion.objects.filter(tenant=tenant)
        .select_related("policy")
        .order_by("policy__title", "policy_id", "-number")
        .distinct("policy__title", "policy_id")
    )


def pending_for(*, tenant: Tenant, user) -> list[PolicyVersion]:
    """The current versions this user has not acknowledged yet."""
    with tenant_context(tenant):
        current = current_versions(tenant=tenant)
        done = set(
            PolicyAcknowledgement.objects.filter(
                tenant=tenant, user=user, version__in=[v.pk for v in current]
            ).values_list("version_id", flat=True)
        )
    return [v for v in current if v.pk not in done]


@transaction.atomic
def policy_acknowledge(*, tenant: Tenant, user, version: PolicyVersion) -> PolicyAcknowledgement:
    """Only the current version can be acknowledged; twice is refused (the first one stands)."""
    with tenant_context(tenant):
        newest = (
            PolicyVersion.objects.filter(tenant=tenant, policy_id=version.policy_id)
            .order_by("-number")
            .values_list("pk", flat=True)
            .first()
        )
        if newest != version.pk:
            raise Conflict("A newer version of this policy was published: read and acknowledge that one.")
        try:
            with transaction.atomic():
                acknowledgement = PolicyAcknowledgement.objects.create(
                    tenant=tenant, version=version, user=user
                )
        except IntegrityError:
            raise Conflict("You already acknowledged this version.") from None
        audit.record(
            actor=Actor.for_user(user),
            action="policy.acknowledge",
            target=version,
            tenant=tenant,
            details={"policy": str(version.policy_id), "version": version.number},
        )
    return acknowledgement


@dataclass(frozen=True)
class PolicyStatus:
    version: PolicyVersion
    acknowledged: list[tuple[str, object]]  # (email, when)
    missing: list[str]  # emails of active members who have not acknowledged the current version

    @property
    def members(self) -> int:
        return len(self.acknowledged) + len(self.missing)


def policy_status(*, tenant: Tenant) -> list[PolicyStatus]:
    """For each policy's current version: who acknowledged it (and when), who has not."""
    with tenant_context(tenant):
        members = {
            m.user_id: m.user.email
            for m in Membership.objects.for_tenant(tenant).filter(is_active=True).select_related("user")
        }
        found = []
        for version in current_versions(tenant=tenant):
            done = dict(
                PolicyAcknowledgement.objects.filter(tenant=tenant, version=version).values_list(
                    "user_id", "acknowledged_at"
                )
            )
            found.append(
                PolicyStatus(
                    version,
                    sorted((members[u], at) for u, at in done.items() if u in members),
                    sorted(email for u, email in members.items() if u not in done),
                )
            )
    return found

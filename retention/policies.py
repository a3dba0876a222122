"""Retention policies: shipped defaults, proposed versions, approval, the version in force at a date.

A version takes effect when it is approved, never earlier: policies are not back-dated. Disposal
judges each record against the version in force when the record is destroyed (the batch re-checks),
so a longer retention approved while a run waits or runs protects the records at once, and a shorter
one makes more records due at the next run, where the preview shows them before anything happens.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from healthmail.accounts.four_eyes import SecondPerson, second_person_require
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context

from .models import Action, RetentionPolicy
from .registry import YEAR, Category, all_categories, category_get

PERMISSION = "retention.manage"  # who proposes and approves policies, exceptions and disposal runs


@dataclass(frozen=True)
class PolicyInput:
    min_retention_days: int
    max_retention_days: int | None
    action: str
    approval_required: bool
    rationale: str
    reason: str
    # Rows as LegalBasis.as_dict(); a row with "applies" (a condition) is informational, the others
    # bind: the minimum must be at least the longest of them.
    legal_basis: list[dict] = field(default_factory=list)
    archive_after_days: int | None = None


def policies_ensure_defaults(*, tenant) -> None:
    """Write the shipped default as version 1 of every category that has no policy yet."""
    with tenant_context(tenant):
        existing = set(RetentionPolicy.objects.filter(tenant=tenant).values_list("category", flat=True))
        now = timezone.now()
        for category in all_categories():
            if category.key in existing:
                continue
            default = category.default
            try:
                with transaction.atomic():
                    RetentionPolicy.objects.create(
                        tenant=tenant,
                        category=category.key,
                        version=1,
                        min_retention_days=default.min_days,
                        max_retention_days=default.max_days,
                        archive_after_days=default.archive_after_days,
                        action=default.action,
                        approval_required=default.approval_required,
                        legal_basis=[b.as_dict() for b in default.legal_basis],
                        rationale=default.rationale,
                        reason="Shipped default",
                        status=RetentionPolicy.Status.ACTIVE,
                        approved_at=now,
                        effective_from=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC),
                        is_shipped_default=True,
                    )
            except IntegrityError:
                continue  # written concurrently by another request or the scheduler


def policy_in_force(*, tenant, category: str, at: datetime.datetime | None = None) -> RetentionPolicy | None:
    """The newest approved version effective at `at` (default: now)."""
    at = at or timezone.now()
    with tenant_context(tenant):
        return (
            RetentionPolicy.objects.filter(
                tenant=tenant,
                category=category,
                status__in=[RetentionPolicy.Status.ACTIVE, RetentionPolicy.Status.SUPERSEDED],
                effective_from__lte=at,
            )
            .order_by("-effective_from", "-version")
            .first()
        )


def policy_history(*, tenant, category: str) -> list[RetentionPolicy]:
    with tenant_context(tenant):
        return list(
            RetentionPolicy.objects.filter(tenant=tenant, category=category)
            .select_related("created_by", "approved_by")
            .order_by("-version")
        )


def cutoff(policy: RetentionPolicy | None, at: datetime.datetime) -> datetime.datetime | None:
    """Records whose clock is before this moment are past the maximum (None: nothing is due)."""
    if policy is None or policy.action == Action.REVIEW or policy.max_retention_days is None:
        return None
    return at - datetime.timedelta(days=policy.max_retention_days)


def _validate(category: Category, data: PolicyInput) -> None:
    def refuse(message: str, code: str) -> None:
        raise ApplicationError(message, code=code)

    if category.archive is None and (data.action == Action.ARCHIVE or data.archive_after_days is not None):
        refuse(f"{category.label} are never moved to the archive: {category.not_archivable}", "archive")
    if data.action not in category.actions:
        allowed = ", ".join(Action(a).label.lower() for a in category.actions)
        refuse(f"{category.label} can only be set to: {allowed}. {category.notes}".strip(), "action")
    if data.max_retention_days is not None and data.max_retention_days < data.min_retention_days:
        refuse(
            f"The maximum retention ({data.max_retention_days} days) is shorter than the minimum "
            f"({data.min_retention_days} days): records would have to be destroyed before they may be.",
            "max_below_min",
        )
    if data.action in (Action.DESTROY, Action.ARCHIVE) and data.max_retention_days is None:
        refuse("Destroying or archiving at the end needs a maximum retention.", "max_required")
    if category.legal_minimum_days and data.min_retention_days < category.legal_minimum_days:
        rules = "; ".join(b.citation for b in category.default.legal_basis if b.years and not b.applies)
        refuse(
            f"{category.label} must be kept at least {category.legal_minimum_days // YEAR} years ({rules}).",
            "below_legal_minimum",
        )
    for row in data.legal_basis:
        if not str(row.get("citation", "")).strip() or not str(row.get("rule", "")).strip():
            refuse("Every legal-basis row needs a citation and the rule it states.", "legal_basis")
        years = row.get("years")
        if years and not row.get("applies") and data.min_retention_days < round(float(years) * YEAR):
            refuse(
                f"The minimum is shorter than {row['citation']} requires ({years} years): the minimum "
                "must be the longest applicable rule.",
                "below_basis",
            )
    if (
        data.archive_after_days is not None
        and data.max_retention_days is not None
        and data.archive_after_days > data.max_retention_days
    ):
        refuse("Records must move to the archive before the maximum retention ends.", "archive_after_max")
    if not data.reason.strip() or not data.rationale.strip():
        refuse("Give the reason for this change and the rationale of the policy.", "reason")


@transaction.atomic
def policy_propose(*, tenant, actor: Actor, category: str, data: PolicyInput) -> RetentionPolicy:
    try:
        spec = category_get(category)
    except KeyError:
        raise ApplicationError("Unknown record category.", code="category") from None
    _validate(spec, data)
    policies_ensure_defaults(tenant=tenant)  # the shipped default stays v1 of the history
    with tenant_context(tenant):
        versions = RetentionPolicy.objects.select_for_update().filter(tenant=tenant, category=category)
        if versions.filter(status=RetentionPolicy.Status.PENDING).exists():
            raise Conflict("A version of this policy is already waiting for approval.", code="pending")
        version = 1 + max((v.version for v in versions), default=0)
        policy = RetentionPolicy.objects.create(
            tenant=tenant,
            category=category,
            version=version,
            min_retention_days=data.min_retention_days,
            max_retention_days=data.max_retention_days,
            archive_after_days=data.archive_after_days,
            action=data.action,
            approval_required=data.approval_required,
            legal_basis=data.legal_basis,
            rationale=data.rationale,
            reason=data.reason,
            created_by=actor.user,
        )
        audit.record(
            actor=actor,
            action="retention.policy_propose",
            target=policy,
            tenant=tenant,
            reason=data.reason,
            details={"category": category, "version": version, "action": data.action},
        )
    return policy


@transaction.atomic
def policy_decide(
    *, tenant, actor: Actor, policy: RetentionPolicy, approve: bool, sole_officer_reason: str = ""
) -> RetentionPolicy:
    """Approve or reject a proposed version. Approving needs a second officer (four eyes; the author
    of the version rejecting it withdraws it)."""
    with tenant_context(tenant):
        policy = RetentionPolicy.objects.select_for_update().get(tenant=tenant, pk=policy.pk)
        if policy.status != RetentionPolicy.Status.PENDING:
            raise Conflict("This version was already decided.", code="decided")
        second = SecondPerson()
        if approve:
            second = second_person_require(
                tenant=tenant,
                approver=actor.user,
                authors=[policy.created_by],
                permission=PERMISSION,
                what="policy version",
                sole_officer_reason=sole_officer_reason,
            )
        now = timezone.now()
        policy.approved_by, policy.approved_at = actor.user, now
        policy.sole_officer_reason = second.sole_officer_reason
        if approve:
            RetentionPolicy.objects.filter(
                tenant=tenant, category=policy.category, status=RetentionPolicy.Status.ACTIVE
            ).update(status=RetentionPolicy.Status.SUPERSEDED)
            policy.status, policy.effective_from = RetentionPolicy.Status.ACTIVE, now
        else:
            policy.status = RetentionPolicy.Status.REJECTED
        policy.save(
            update_fields=["status", "approved_by", "approved_at", "effective_from", "sole_officer_reason"]
        )
        audit.record(
            actor=actor,
            action="retention.policy_approve" if approve else "retention.policy_reject",
            target=policy,
            tenant=tenant,
            details={"category": policy.category, "version": policy.version, **second.as_details()},
        )
    return policy

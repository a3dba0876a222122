"""Periodic access reviews (45 CFR 164.308(a)(4)(ii)(C) and (a)(3)(ii)(B): access is established,
reviewed and modified; workforce access is appropriate): a tenant admin confirms, member by member,
who keeps which role.

A review is written in one go and never changed: the members as of that moment (email and role), the
admin's keep/remove with a note (required to remove), and the removals applied through the ordinary
membership service (so "keep one admin" and the membership audit events hold). If the members changed
while the admin was deciding, the review is refused: it must be about the list the admin saw.

Reviews are due every ACCESS_REVIEW_INTERVAL_DAYS days, counted from the last review (from the
organization's creation before the first). Reminders are raised 30, 14, 7 and 1 days before the due
date, once per threshold, as audit events flagged `alert` (the BAA reminders' path)."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from audit import services as audit
from healthmail.accounts.models import Membership
from healthmail.accounts.roles import role_can
from healthmail.accounts.services import member_deactivate
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict, PermissionRefused
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import AccessReview, AccessReviewEntry, AccessReviewReminder

PERFORM = "access_reviews.perform"
VIEW = "access_reviews.view"
REMINDER_DAYS = (30, 14, 7, 1)


@dataclass(frozen=True)
class Decision:
    decision: str
    note: str = ""


def interval_days() -> int:
    return settings.ACCESS_REVIEW_INTERVAL_DAYS


def due_on(*, tenant: Tenant) -> datetime.date:
    """The next review's due date: one interval after the last review, or after the organization
    was created when it has none (call inside the tenant context)."""
    last = AccessReview.objects.filter(tenant=tenant).order_by("-reviewed_at").first()
    start = last.reviewed_at if last else tenant.created_at
    return timezone.localdate(start) + datetime.timedelta(days=interval_days())


def members_now(*, tenant: Tenant) -> list[Membership]:
    """The active members, as a review lists them (call inside the tenant context)."""
    return list(
        Membership.objects.for_tenant(tenant)
        .filter(is_active=True)
        .select_related("user")
        .order_by("role", "user__email")
    )


def _checked(decisions: dict[uuid.UUID, Decision]) -> None:
    for choice in decisions.values():
        if choice.decision not in AccessReviewEntry.Decision.values:
            raise ApplicationError("Mark every member keep or remove.", code="decision")
        if choice.decision == AccessReviewEntry.Decision.REMOVE and not choice.note.strip():
            raise ApplicationError("Say why, in the note, for every member you remove.", code="note")


@transaction.atomic
def access_review_complete(
    *, tenant: Tenant, user, role: str | None, decisions: dict[uuid.UUID, Decision]
) -> AccessReview:
    """Record the review of every active member (membership id → decision) and apply the removals."""
    if not role_can(role, PERFORM):
        raise PermissionRefused("Only the organization's admins review access.")
    _checked(decisions)
    actor = Actor.for_user(user)
    with tenant_context(tenant):
        members = list(
            Membership.objects.for_tenant(tenant)
            .filter(is_active=True)
            .select_for_update()
            .select_related("user")
        )
        if {m.pk for m in members} != set(decisions):
            raise Conflict("The members changed since this list was opened: review the new list.")
        review = AccessReview.objects.create(tenant=tenant, due_on=due_on(tenant=tenant), reviewed_by=user)
        AccessReviewEntry.objects.bulk_create(
            AccessReviewEntry(
                tenant=tenant,
                review=review,
                membership=member,
                email=member.user.email,
                role=member.role,
                decision=decisions[member.pk].decision,
                note=decisions[member.pk].note.strip()[:1000],
            )
            for member in members
        )
        removed = 0
        for member in members:
            if decisions[member.pk].decision == AccessReviewEntry.Decision.REMOVE:
                member_deactivate(
                    actor=actor,
                    tenant=tenant,
                    membership=member,
                    reason=f"Access review {review.pk}: {decisions[member.pk].note.strip()}",
                )
                removed += 1
        counts = AccessReviewEntry.objects.filter(tenant=tenant, review=review).aggregate(
            kept=Count("id", filter=Q(decision=AccessReviewEntry.Decision.KEEP)),
            removed=Count("id", filter=Q(decision=AccessReviewEntry.Decision.REMOVE)),
        )
        audit.record(
            actor=actor,
            action="access_review.complete",
            target=review,
            tenant=tenant,
            details={"review": str(review.pk), "due_on": review.due_on.isoformat(), **counts},
        )
    return review


@dataclass(frozen=True)
class ReviewRow:
    review: AccessReview
    kept: int
    removed: int
    on_time: bool


def reviews_completed(*, tenant: Tenant) -> list[ReviewRow]:
    with tenant_context(tenant):
        rows = (
            AccessReview.objects.filter(tenant=tenant)
            .select_related("reviewed_by")
            .annotate(
                kept=Count("entries", filter=Q(entries__decision=AccessReviewEntry.Decision.KEEP)),
                removed=Count("entries", filter=Q(entries__decision=AccessReviewEntry.Decision.REMOVE)),
            )
        )
        return [ReviewRow(r, r.kept, r.removed, timezone.localdate(r.reviewed_at) <= r.due_on) for r in rows]


def reminder_threshold(due: datetime.date, today: datetime.date) -> int | None:
    left = (due - today).days
    reached = [days for days in REMINDER_DAYS if left <= days]
    return min(reached) if reached else None


def review_reminders_tenant(tenant: Tenant, today: datetime.date | None = None) -> int:
    today = today or timezone.localdate()
    with tenant_context(tenant):
        due = due_on(tenant=tenant)
        threshold = reminder_threshold(due, today)
        if threshold is None:
            return 0
        left = (due - today).days
        when = f"overdue since {due}" if left < 0 else f"due on {due} (in {left} days)"
        try:
            with transaction.atomic():
                AccessReviewReminder.objects.create(tenant=tenant, due_on=due, threshold_days=threshold)
                audit.record(
                    actor=Actor.system("incidents.access_reviews"),
                    action="access_review.reminder",
                    target=("incidents.accessreview", ""),
                    tenant=tenant,
                    details={
                        "due_on": due.isoformat(),
                        "threshold_days": threshold,
                        "alert": "critical" if threshold <= 7 else "warning",
                        "summary": f"The periodic access review is {when}: an admin confirms who "
                        "keeps which role",
                    },
                )
        except IntegrityError:
            return 0  # this threshold was raised already
    return 1


def review_reminders(today: datetime.date | None = None) -> int:
    return sum(
        review_reminders_tenant(tenant, today)
        for tenant in Tenant.objects.filter(status=Tenant.Status.ACTIVE)
    )

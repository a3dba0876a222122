"""Retention exceptions (a time-limited extension for named records) and the daily upkeep that the
scheduler runs for each tenant: plan disposal, move records to the archive, remind hold reviews."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from healthmail.accounts.four_eyes import SecondPerson, second_person_require
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context

from .models import RetentionException
from .policies import PERMISSION
from .registry import category_get, expand_groups

MAX_EXCEPTION_DAYS = 3 * 365
MAX_RECORDS_PER_EXCEPTION = 1000


@transaction.atomic
def exception_request(
    *,
    tenant,
    actor: Actor,
    category: str,
    record_ids: Sequence[str],
    reason: str,
    extend_until: datetime.date,
) -> RetentionException:
    try:
        category_get(category)
    except KeyError:
        raise ApplicationError("Unknown record category.", code="category") from None
    ids = list(dict.fromkeys(str(r).strip() for r in record_ids if str(r).strip()))
    if not ids or len(ids) > MAX_RECORDS_PER_EXCEPTION:
        raise ApplicationError(f"Name between 1 and {MAX_RECORDS_PER_EXCEPTION} records.", code="records")
    today = timezone.localdate()
    if not today < extend_until <= today + datetime.timedelta(days=MAX_EXCEPTION_DAYS):
        raise ApplicationError(
            "An extension ends in the future and at most three years from now; for longer, use a "
            "legal hold or change the policy.",
            code="extend_until",
        )
    if not reason.strip():
        raise ApplicationError("Say why these records must be kept longer.", code="reason")
    with tenant_context(tenant):
        exception = RetentionException.objects.create(
            tenant=tenant,
            category=category,
            record_ids=ids,
            reason=reason.strip(),
            extend_until=extend_until,
            requested_by=actor.user,
        )
        audit.record(
            actor=actor,
            action="retention.exception_request",
            target=exception,
            tenant=tenant,
            reason=reason[:500],
            details={"category": category, "records": len(ids), "extend_until": str(extend_until)},
        )
    return exception


@transaction.atomic
def exception_decide(
    *,
    tenant,
    actor: Actor,
    exception: RetentionException,
    approve: bool,
    reason: str = "",
    sole_officer_reason: str = "",
) -> RetentionException:
    """Approving needs a second officer (four eyes); the requester rejecting it withdraws it."""
    with tenant_context(tenant):
        exception = RetentionException.objects.select_for_update().get(tenant=tenant, pk=exception.pk)
        if exception.status != RetentionException.Status.REQUESTED:
            raise Conflict("This exception was already decided.", code="decided")
        second = SecondPerson()
        if approve:
            second = second_person_require(
                tenant=tenant,
                approver=actor.user,
                authors=[exception.requested_by],
                permission=PERMISSION,
                what="exception",
                sole_officer_reason=sole_officer_reason,
            )
        exception.sole_officer_reason = second.sole_officer_reason
        exception.status = (
            RetentionException.Status.APPROVED if approve else RetentionException.Status.REJECTED
        )
        exception.decided_by, exception.decided_at = actor.user, timezone.now()
        exception.decision_reason = reason.strip()
        exception.save(
            update_fields=["status", "decided_by", "decided_at", "decision_reason", "sole_officer_reason"]
        )
        audit.record(
            actor=actor,
            action="retention.exception_approve" if approve else "retention.exception_reject",
            target=exception,
            tenant=tenant,
            reason=reason[:500],
            details={
                "category": exception.category,
                "records": len(exception.record_ids),
                **second.as_details(),
            },
        )
    return exception


def exceptions_sql(category: str, today: datetime.date, alias: str = "c") -> tuple[str, list]:
    """An SQL condition over candidate-shaped columns: an approved, unexpired exception names the
    record, in its category or any category of the same hold group."""
    sql = (
        "EXISTS (SELECT 1 FROM retention_retentionexception e WHERE e.tenant_id = "  # noqa: S608
        f"{alias}.tenant_id AND e.status = 'approved' AND e.extend_until >= %s AND "
        f"{alias}.record_id = ANY(e.record_ids) AND e.category = ANY(%s))"
    )
    return sql, [today, sorted(expand_groups([category]))]


def retention_daily(*, tenant) -> dict[str, int]:
    """The scheduled upkeep of one tenant."""
    from . import archive, disposal, holds

    runs = disposal.disposal_plan(
        tenant=tenant, actor=Actor.system("retention.scheduler"), trigger="scheduled"
    )
    moved = archive.archive_due(tenant=tenant)
    reminded = holds.hold_reviews_remind(tenant=tenant)
    return {"runs": len(runs), "archived": moved, "hold_reminders": reminded}

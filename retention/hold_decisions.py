"""Decisions on a legal hold after it is placed: approval (a recorded sign-off), periodic review, and
release, which is asked for by one officer and confirmed by a second (four eyes,
healthmail/accounts/four_eyes.py). Re-exported by holds.py, the module callers use."""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from healthmail.accounts.four_eyes import second_person_require
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context

from .models import LegalHold

PERMISSION = "legal_holds.manage"  # who places, approves and releases holds


def _locked(tenant, hold: LegalHold) -> LegalHold:
    return LegalHold.objects.select_for_update().get(tenant=tenant, pk=hold.pk)


@transaction.atomic
def hold_approve(*, tenant, actor: Actor, hold: LegalHold, sole_officer_reason: str = "") -> LegalHold:
    with tenant_context(tenant):
        hold = _locked(tenant, hold)
        if hold.approved_at is not None:
            raise Conflict("This hold is already approved.", code="approved")
        second = second_person_require(
            tenant=tenant,
            approver=actor.user,
            authors=[hold.created_by],
            permission=PERMISSION,
            what="hold",
            sole_officer_reason=sole_officer_reason,
        )
        hold.approved_by, hold.approved_at = actor.user, timezone.now()
        hold.approval_sole_officer_reason = second.sole_officer_reason
        hold.save(update_fields=["approved_by", "approved_at", "approval_sole_officer_reason"])
        audit.record(
            actor=actor, action="legal_hold.approve", target=hold, tenant=tenant, details=second.as_details()
        )
    return hold


@transaction.atomic
def hold_review(*, tenant, actor: Actor, hold: LegalHold, note: str) -> LegalHold:
    """The periodic check that the hold is still needed: it stays, and the next review is scheduled."""
    with tenant_context(tenant):
        hold = _locked(tenant, hold)
        if hold.status != LegalHold.Status.ACTIVE:
            raise Conflict("A released hold is not reviewed.", code="released")
        now = timezone.now()
        hold.last_reviewed_at = now
        hold.next_review_at = now + datetime.timedelta(days=hold.review_every_days)
        hold.save(update_fields=["last_reviewed_at", "next_review_at"])
        audit.record(actor=actor, action="legal_hold.review", target=hold, tenant=tenant, reason=note[:500])
    return hold


@transaction.atomic
def hold_release_request(*, tenant, actor: Actor, hold: LegalHold, reason: str) -> LegalHold:
    """Ask for a hold to be released. It stays in force until a second officer confirms the release."""
    if not reason.strip():
        raise ApplicationError("Say why the hold is released (e.g. the matter settled).", code="reason")
    with tenant_context(tenant):
        hold = _locked(tenant, hold)
        if hold.status != LegalHold.Status.ACTIVE:
            raise Conflict("This hold is already released.", code="released")
        if hold.release_requested_at is not None:
            raise Conflict("A release of this hold is already waiting for confirmation.", code="requested")
        hold.release_requested_by, hold.release_requested_at = actor.user, timezone.now()
        hold.release_reason = reason.strip()
        hold.save(update_fields=["release_requested_by", "release_requested_at", "release_reason"])
        audit.record(
            actor=actor, action="legal_hold.release_request", target=hold, tenant=tenant, reason=reason[:500]
        )
    return hold


@transaction.atomic
def hold_release(*, tenant, actor: Actor, hold: LegalHold, sole_officer_reason: str = "") -> LegalHold:
    """Confirm a requested release (four eyes: not the officer who asked for it, unless sole officer)."""
    with tenant_context(tenant):
        hold = _locked(tenant, hold)
        if hold.status != LegalHold.Status.ACTIVE:
            raise Conflict("This hold is already released.", code="released")
        if hold.release_requested_at is None:
            raise Conflict("Nobody asked for this hold to be released.", code="not_requested")
        second = second_person_require(
            tenant=tenant,
            approver=actor.user,
            authors=[hold.release_requested_by],
            permission=PERMISSION,
            what="hold release",
            sole_officer_reason=sole_officer_reason,
        )
        hold.status, hold.released_by, hold.released_at = (
            LegalHold.Status.RELEASED,
            actor.user,
            timezone.now(),
        )
        hold.release_sole_officer_reason = second.sole_officer_reason
        hold.save(update_fields=["status", "released_by", "released_at", "release_sole_officer_reason"])
        audit.record(
            actor=actor,
            action="legal_hold.release",
            target=hold,
            tenant=tenant,
            reason=hold.release_reason[:500],
            details={"requested_by": str(hold.release_requested_by_id), **second.as_details()},
        )
    return hold

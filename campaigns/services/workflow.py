"""The approval workflow: draft → in review → approved → scheduled → sending → sent, plus paused and
cancelled. Each step is a compare-and-set on the status (two reviewers clicking at once cannot both
win), one history row and one audit event.

Separation of duties: a compliance officer approves every campaign, a clinical reviewer too when it
uses PHI, and nobody approves a campaign they created or submitted.
"""

from __future__ import annotations

import datetime
from typing import cast

from django.db import IntegrityError, transaction
from django.utils import timezone

from delivery.engine import services as delivery_controls
from delivery.models import SenderDomain
from healthmail.accounts.four_eyes import second_person_require
from healthmail.accounts.roles import role_can
from healthmail.actors import Actor
from healthmail.errors import PermissionRefused
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Campaign, CampaignApproval, CampaignVariant, Template
from ..templating import lint as linting
from . import scheduling
from . import templates as template_services
from .audience import campaign_audience_preview
from .campaigns import campaign_relint
from .common import CampaignConflict, CampaignError, author_id
from .history import transition_record

Status = Campaign.Status
SOURCE_TYPE = "campaign"
REVIEW_PERMISSION: dict[str, str] = {
    CampaignApproval.Kind.COMPLIANCE: "campaigns.approve_compliance",
    CampaignApproval.Kind.CLINICAL: "campaigns.approve_clinical",
}


def required_reviews(campaign: Campaign) -> list[str]:
    kinds: list[str] = [CampaignApproval.Kind.COMPLIANCE]
    if campaign.uses_phi:
        kinds.append(CampaignApproval.Kind.CLINICAL)
    return kinds


def _move(campaign: Campaign, allowed: tuple[str, ...], to: str, **changes) -> str:
    """Compare-and-set: the status moves only from one of `allowed`; returns the previous status."""
    previous = campaign.status
    updated = Campaign.objects.filter(
        pk=campaign.pk, tenant_id=campaign.tenant_id, status__in=allowed
    ).update(status=to, updated_at=timezone.now(), **changes)
    if updated != 1:
        current = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        label = Status(current).label.lower() if current else "gone"
        raise CampaignConflict(
            f"The campaign is {label}; this step is not possible now.", code="campaign_state"
        )
    campaign.status = to
    for name, value in changes.items():
        setattr(campaign, name, value)
    return previous


def _locked(tenant: Tenant, campaign: Campaign) -> Campaign:
    return (
        Campaign.objects.select_for_update(of=("self",))
        .select_related("segment", "topic", "sender_domain")
        .get(pk=campaign.pk, tenant=tenant)
    )


@transaction.atomic
def campaign_submit(*, tenant: Tenant, actor: Actor, campaign: Campaign, comment: str = "") -> Campaign:
    """Freeze the content and ask for review. Refused while the lint finds errors."""
    with tenant_context(tenant):
        locked = _locked(tenant, campaign)
        if locked.status != Status.DRAFT:
            raise CampaignConflict("Only a draft can be submitted.", code="campaign_state")
        findings = campaign_relint(tenant=tenant, campaign=locked)
        errors = linting.errors_in(findings)
        if errors:
            raise CampaignError(
                f"Fix {len(errors)} compliance error(s) before submitting: "
                + "; ".join(f"{e.where}: {e.message}" if e.where else e.message for e in errors[:5]),
                code="lint_errors",
                extra={"errors": [e.as_dict() for e in errors]},
            )
        main_template = locked.template
        version = (
            template_services.template_freeze(tenant=tenant, actor=actor, template=main_template)
            if main_template is not None
            else None
        )
        for variant in CampaignVariant.objects.for_tenant(tenant).filter(
            campaign=locked, template__isnull=False
        ):
            variant.template_version = template_services.template_freeze(
                tenant=tenant,
                actor=actor,
                template=cast(Template, variant.template),  # template__isnull=False above
            )
            variant.save(update_fields=["template_version"])
        previous = _move(
            locked,
            (Status.DRAFT,),
            Status.IN_REVIEW,
            template_version=version,
            review_round=locked.review_round + 1,
            submitted_by_id=author_id(actor),
            status_reason="",
        )
        campaign_relint(tenant=tenant, campaign=locked)  # now on the frozen version
        transition_record(
            campaign=locked,
            actor=actor,
            action="submit",
            from_status=previous,
            comment=comment,
            details={
                "round": locked.review_round,
                "uses_phi": locked.uses_phi,
                "template_version": str(version.pk) if version else "",
            },
        )
    return locked


@transaction.atomic
def campaign_withdraw(*, tenant: Tenant, actor: Actor, campaign: Campaign, comment: str = "") -> Campaign:
    with tenant_context(tenant):
        locked = _locked(tenant, campaign)
        previous = _move(locked, (Status.IN_REVIEW,), Status.DRAFT, template_version=None)
        transition_record(
            campaign=locked, actor=actor, action="withdraw", from_status=previous, comment=comment
        )
    return locked


def _check_reviewer(tenant: Tenant, campaign: Campaign, actor: Actor, role: str, kind: str) -> None:
    if actor.user is None:
        raise PermissionRefused("Only a person can review a campaign.", code="reviewer_required")
    if not role_can(role, REVIEW_PERMISSION[kind]):
        raise PermissionRefused("Your role cannot give this review.", code="review_role")
    second_person_require(
        tenant=tenant,
        approver=actor.user,
        authors=(campaign.created_by_id, campaign.submitted_by_id),
        permission=REVIEW_PERMISSION[kind],
        what="campaign",
        sole_officer_allowed=False,  # a campaign always has another reviewer: nobody approves their own
        code="own_campaign",
    )


@transaction.atomic
def campaign_approve(
    *, tenant: Tenant, actor: Actor, role: str, campaign: Campaign, kind: str, comment: str = ""
) -> Campaign:
    """Record one review. The campaign is approved once every required review of this round is in."""
    with tenant_context(tenant):
        locked = _locked(tenant, campaign)
        if kind not in REVIEW_PERMISSION:
            raise CampaignError("Unknown review.", code="review_kind")
        _check_reviewer(tenant, locked, actor, role, kind)
        if locked.status != Status.IN_REVIEW:
            raise CampaignConflict("The campaign is not waiting for review.", code="campaign_state")
        if kind not in required_reviews(locked):
            raise CampaignError(
                "This campaign uses no PHI: no clinical review is needed.", code="review_not_needed"
            )
        try:
            with transaction.atomic():
                CampaignApproval.objects.create(
                    tenant=tenant,
                    campaign=locked,
                    round=locked.review_round,
                    kind=kind,
                    decision=CampaignApproval.Decision.APPROVED,
                    reviewer=actor.user,
                    template_version=locked.template_version,
                    comment=comment.strip(),
                )
        except IntegrityError as error:
            raise CampaignConflict("This review was already given.", code="review_given") from error
        approved = set(
            CampaignApproval.objects.for_tenant(tenant)
            .filter(campaign=locked, round=locked.review_round, decision=CampaignApproval.Decision.APPROVED)
            .values_list("kind", flat=True)
        )
        previous = locked.status
        if approved >= set(required_reviews(locked)):
            _move(locked, (Status.IN_REVIEW,), Status.APPROVED)
        transition_record(
            campaign=locked,
            actor=actor,
            action=f"approve_{kind}",
            from_status=previous,
            comment=comment,
            details={"round": locked.review_round},
        )
    return locked


@transaction.atomic
def campaign_reject(
    *, tenant: Tenant, actor: Actor, role: str, campaign: Campaign, kind: str, comment: str
) -> Campaign:
    if not comment.strip():
        raise CampaignError("Say what needs to change.", code="comment_required")
    with tenant_context(tenant):
        locked = _locked(tenant, campaign)
        if kind not in REVIEW_PERMISSION:
            raise CampaignError("Unknown review.", code="review_kind")
        _check_reviewer(tenant, locked, actor, role, kind)
        CampaignApproval.objects.create(
            tenant=tenant,
            campaign=locked,
            round=locked.review_round,
            kind=kind,
            decision=CampaignApproval.Decision.REJECTED,
            reviewer=actor.user,
            template_version=locked.template_version,
            comment=comment.strip(),
        )
        previous = _move(locked, (Status.IN_REVIEW,), Status.DRAFT, template_version=None)
        transition_record(
            campaign=locked, actor=actor, action=f"reject_{kind}", from_status=previous, comment=comment
        )
    return locked


@transaction.atomic
def campaign_schedule(
    *,
    tenant: Tenant,
    actor: Actor,
    campaign: Campaign,
    send_date: datetime.date | None = None,
    send_time: datetime.time | None = None,
    timezone_mode: str = Campaign.TimezoneMode.TENANT,
    confirm_empty: bool = False,
    now: datetime.datetime | None = None,
) -> Campaign:
    """Schedule an approved campaign: now, or at a local time (the organization's or each
    recipient's). The launch task is queued for that moment; the sweeper launches it if the broker
    loses the task. A campaign nobody in its audience may receive now is refused unless
    `confirm_empty` (the marketer saw the warning and the reasons, and still wants it)."""
    from .. import tasks

    now = now or timezone.now()
    with tenant_context(tenant):
        locked = _locked(tenant, campaign)
        if locked.status != Status.APPROVED:
            raise CampaignConflict("Only an approved campaign can be scheduled.", code="campaign_state")
        if locked.sender_domain is None or locked.sender_domain.status != SenderDomain.Status.VERIFIED:
            raise CampaignError(
                "The sender domain must be verified before the campaign can go out.",
                code="sender_domain_unverified",
            )
        if (send_date is None) != (send_time is None):
            raise CampaignError(
                "Give both a date and a time, or neither (send now).", code="schedule_invalid"
            )
        if timezone_mode not in Campaign.TimezoneMode.values:
            raise CampaignError("Choose whose time zone the time is in.", code="schedule_invalid")
        preview = campaign_audience_preview(tenant=tenant, campaign=locked, now=now)
        if preview is not None and preview.sends_nothing and not confirm_empty:
            why = f"not sent, by reason: {preview.sentence()}" if preview.members else "the segment is empty"
            raise CampaignError(
                "This campaign would send no messages: nobody in the audience may receive it now "
                f"({why}). Confirm to schedule it anyway.",
                code="audience_empty",
                extra={"exclusions": [{"reason": e.code, "label": e.label} for e in preview.exclusions]},
            )
        start = scheduling.schedule_start(
            tenant_timezone=tenant.timezone,
            send_date=send_date,
            send_time=send_time,
            mode=timezone_mode,
            now=now,
        )
        previous = _move(
            locked,
            (Status.APPROVED,),
            Status.SCHEDULED,
            send_date=send_date,
            send_time=send_time,
            timezone_mode=timezone_mode,
            scheduled_for=start,
            empty_send_confirmed=confirm_empty,
            status_reason="",
        )
        details: dict[str, object] = {"scheduled_for": start.isoformat(), "timezone_mode": timezone_mode}
        if preview is not None:
            details |= {"sendable_now": preview.sendable, "empty_send_confirmed": confirm_empty}
        transition_record(
            campaign=locked, actor=actor, action="schedule", from_status=previous, details=details
        )
        tasks.launch_later(campaign=locked, eta=start)
    return locked


@transaction.atomic
def campaign_unschedule(*, tenant: Tenant, actor: Actor, campaign: Campaign) -> Campaign:
    with tenant_context(tenant):
        locked = _locked(tenant, campaign)
        previous = _move(locked, (Status.SCHEDULED,), Status.APPROVED, scheduled_for=None)
        transition_record(campaign=locked, actor=actor, action="unschedule", from_status=previous)
    return locked


@transaction.atomic
def campaign_pause(*, tenant: Tenant, actor: Actor, campaign: Campaign, comment: str = "") -> Campaign:
    """Hold every message not yet sent; a message a worker already holds finishes."""
    with tenant_context(tenant):
        locked = _locked(tenant, campaign)
        previous = _move(locked, (Status.SENDING,), Status.PAUSED, paused_at=timezone.now())
        held = delivery_controls.messages_pause_for_source(
            tenant=tenant, source_type=SOURCE_TYPE, source_id=str(locked.pk)
        )
        transition_record(
            campaign=locked,
            actor=actor,
            action="pause",
            from_status=previous,
            comment=comment,
            details={"held": held},
        )
    return locked


@transaction.atomic
def campaign_resume(*, tenant: Tenant, actor: Actor, campaign: Campaign, comment: str = "") -> Campaign:
    with tenant_context(tenant):
        locked = _locked(tenant, campaign)
        previous = _move(locked, (Status.PAUSED,), Status.SENDING, paused_at=None)
        released = delivery_controls.messages_resume_for_source(
            tenant=tenant, source_type=SOURCE_TYPE, source_id=str(locked.pk)
        )
        transition_record(
            campaign=locked,
            actor=actor,
            action="resume",
            from_status=previous,
            comment=comment,
            details={"released": released},
        )
    return locked


CANCELLABLE = (
    Status.DRAFT,
    Status.IN_REVIEW,
    Status.APPROVED,
    Status.SCHEDULED,
    Status.SENDING,
    Status.PAUSED,
)


@transaction.atomic
def campaign_cancel(*, tenant: Tenant, actor: Actor, campaign: Campaign, comment: str = "") -> Campaign:
    """Stop for good: queued and held messages become cancelled; sent ones stay sent."""
    with tenant_context(tenant):
        locked = _locked(tenant, campaign)
        previous = _move(locked, CANCELLABLE, Status.CANCELLED, finished_at=timezone.now())
        cancelled = delivery_controls.messages_cancel_for_source(
            tenant=tenant,
            source_type=SOURCE_TYPE,
            source_id=str(locked.pk),
            actor=actor,
            reason="campaign cancelled",
        )
        transition_record(
            campaign=locked,
            actor=actor,
            action="cancel",
            from_status=previous,
            comment=comment,
            details={"messages_cancelled": cancelled},
        )
    return locked

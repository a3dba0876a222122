"""Every campaign transition: a row of the campaign's history (what its people read) and an audit
event (what compliance searches), written in the same transaction as the change itself."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from audit import services as audit
from healthmail.actors import Actor

from ..models import Campaign, CampaignTransition

# What each history action reads as (registered with healthmail.labels as "campaign_action").
ACTION_LABELS = {
    "create": _("Created"),
    "edit": _("Edited"),
    "submit": _("Submitted for review"),
    "withdraw": _("Withdrawn"),
    "approve_compliance": _("Approved (compliance)"),
    "approve_clinical": _("Approved (clinical)"),
    "reject_compliance": _("Changes requested (compliance)"),
    "reject_clinical": _("Changes requested (clinical)"),
    "schedule": _("Scheduled"),
    "unschedule": _("Unscheduled"),
    "launch": _("Launched"),
    "launch_failed": _("Launch failed"),
    "ab_winner": _("A/B winner chosen"),
    "pause": _("Paused"),
    "resume": _("Resumed"),
    "cancel": _("Cancelled"),
    "complete": _("Completed"),
}


def transition_record(
    *,
    campaign: Campaign,
    actor: Actor,
    action: str,
    from_status: str,
    comment: str = "",
    details: dict | None = None,
) -> CampaignTransition:
    row = CampaignTransition.objects.create(
        tenant_id=campaign.tenant_id,
        campaign=campaign,
        from_status=from_status,
        to_status=campaign.status,
        action=action,
        actor=actor.reference,
        user=actor.user,
        comment=comment.strip(),
    )
    audit.record(
        actor=actor,
        action=f"campaign.{action}",
        target=campaign,
        tenant=campaign.tenant_id,
        # The reviewer's comment is the reason of the decision (reviewers write about the campaign,
        # never about a patient; the field is capped at 500 characters).
        reason=comment.strip(),
        details={"from": from_status, "to": campaign.status, **(details or {})},
    )
    return row

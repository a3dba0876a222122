"""Every campaign transition: a row of the campaign's history (what its people read) and an audit
event (what compliance searches), written in the same transaction as the change itself."""

from __future__ import annotations

from audit import services as audit
from audit.actors import Actor

from ..models import Campaign, CampaignTransition
from .common import actor_ref


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
        actor=actor_ref(actor),
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

"""The approval workflow: separation of duties, the PHI review, edits after approval, locked
campaigns, pause/resume/cancel, and an audit event with the comment for every transition."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from campaigns.models import Campaign, CampaignApproval, CampaignTransition
from campaigns.services import campaigns as campaign_services
from campaigns.services import launch, workflow
from campaigns.services.common import CampaignConflict, CampaignError
from delivery.models import Message
from healthmail.errors import PermissionRefused
from healthmail.tenants.context import tenant_context

from .conftest import approved, campaign_input, contacts, draft, opt_in, person, scheduled, segment

pytestmark = pytest.mark.django_db
Status = Campaign.Status


def _approve(tenant, reviewer, campaign, kind="compliance", comment=""):
    return workflow.campaign_approve(
        tenant=tenant, actor=reviewer.actor, role=reviewer.role, campaign=campaign, kind=kind, comment=comment
    )


def test_compliance_approval_moves_a_non_phi_campaign_to_approved(tenant_a, team, ready):
    campaign = draft(tenant_a, team, ready)
    campaign = workflow.campaign_submit(tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign)
    assert campaign.status == Status.IN_REVIEW
    assert campaign.template_version is not None

    campaign = _approve(tenant_a, team["compliance"], campaign, comment="Looks fine")
    assert campaign.status == Status.APPROVED
    with tenant_context(tenant_a):
        event = AuditEvent.objects.filter(
            action="campaign.approve_compliance", target_id=str(campaign.pk)
        ).get()
        history = list(CampaignTransition.objects.filter(campaign=campaign).values_list("action", flat=True))
    assert event.reason == "Looks fine"
    assert event.details["to"] == "approved"
    assert history == ["create", "submit", "approve_compliance"]


def test_nobody_approves_their_own_campaign(tenant_a, team, ready):
    from campaigns.services import campaigns as services

    # A compliance officer who created the campaign (created_by) may not approve it.
    officer = team["compliance"]
    data = campaign_input(
        tenant_a, template_obj=ready["template"], segment_obj=ready["segment"], domain=ready["domain"]
    )
    campaign = services.campaign_create(tenant=tenant_a, actor=officer.actor, data=data)
    campaign = workflow.campaign_submit(tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign)
    with pytest.raises(PermissionRefused, match="own campaign"):
        _approve(tenant_a, officer, campaign)
    assert Campaign.objects.filter(pk=campaign.pk).exists() is False  # invisible outside the tenant
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=campaign.pk).status == Status.IN_REVIEW


def test_roles_without_the_review_permission_cannot_approve(tenant_a, team, ready):
    campaign = workflow.campaign_submit(
        tenant=tenant_a, actor=team["marketer"].actor, campaign=draft(tenant_a, team, ready)
    )
    for reviewer in (team["marketer2"], team["admin"], team["clinical"]):
        with pytest.raises(PermissionRefused):
            _approve(tenant_a, reviewer, campaign, kind="compliance")


def test_phi_campaign_needs_compliance_and_clinical_review(tenant_a, team, ready):
    clinical_segment = segment(
        tenant_a, {"field": "condition", "op": "in", "value": ["E11.9"]}, name="Diabetes"
    )
    campaign = draft(tenant_a, team, {**ready, "segment": clinical_segment})
    campaign = workflow.campaign_submit(tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign)

    campaign = _approve(tenant_a, team["compliance"], campaign)
    assert campaign.status == Status.IN_REVIEW  # still waiting for the clinical reviewer
    with pytest.raises(CampaignConflict):
        _approve(tenant_a, team["compliance"], campaign)  # the same review twice
    campaign = _approve(
        tenant_a, team["clinical"], campaign, kind="clinical", comment="Minimum necessary: ok"
    )
    assert campaign.status == Status.APPROVED


def test_clinical_review_is_refused_when_no_phi_is_used(tenant_a, team, ready):
    campaign = workflow.campaign_submit(
        tenant=tenant_a, actor=team["marketer"].actor, campaign=draft(tenant_a, team, ready)
    )
    with pytest.raises(CampaignError, match="no clinical review"):
        _approve(tenant_a, team["clinical"], campaign, kind="clinical")


def test_rejection_needs_a_comment_and_returns_the_campaign_to_draft(tenant_a, team, ready):
    campaign = workflow.campaign_submit(
        tenant=tenant_a, actor=team["marketer"].actor, campaign=draft(tenant_a, team, ready)
    )
    officer = team["compliance"]
    with pytest.raises(CampaignError):
        workflow.campaign_reject(
            tenant=tenant_a,
            actor=officer.actor,
            role=officer.role,
            campaign=campaign,
            kind="compliance",
            comment=" ",
        )
    campaign = workflow.campaign_reject(
        tenant=tenant_a,
        actor=officer.actor,
        role=officer.role,
        campaign=campaign,
        kind="compliance",
        comment="Say which clinics offer it",
    )
    assert campaign.status == Status.DRAFT
    with tenant_context(tenant_a):
        rejection = CampaignApproval.objects.get(campaign=campaign)
    assert rejection.decision == "rejected"
    assert rejection.comment == "Say which clinics offer it"


def test_any_edit_after_approval_returns_to_draft_and_needs_new_approval(tenant_a, team, ready):
    campaign = approved(tenant_a, team, ready)
    data = campaign_input(
        tenant_a,
        template_obj=ready["template"],
        segment_obj=ready["segment"],
        domain=ready["domain"],
        name=campaign.name,
        sender_name="Another sender",
    )
    campaign = campaign_services.campaign_update(
        tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign, data=data
    )
    assert campaign.status == Status.DRAFT
    assert campaign.template_version is None
    campaign = workflow.campaign_submit(tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign)
    assert campaign.review_round == 2
    assert campaign.status == Status.IN_REVIEW  # the first round's approval does not count


def test_editing_while_sending_is_refused_and_nothing_changes(tenant_a, team, ready):
    opt_in(tenant_a, contacts(tenant_a, 2))
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    data = campaign_input(
        tenant_a,
        template_obj=ready["template"],
        segment_obj=ready["segment"],
        domain=ready["domain"],
        name="Renamed",
    )
    with pytest.raises(CampaignConflict, match="can no longer be edited"):
        campaign_services.campaign_update(
            tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign, data=data
        )
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=campaign.pk).name == campaign.name


def test_crlf_in_sender_name_is_refused(tenant_a, team, ready):
    with pytest.raises(CampaignError, match="line breaks"):
        draft(tenant_a, team, ready, sender_name="Clinic\r\nBcc: someone@example.org")


def test_scheduling_needs_a_verified_sender_domain(tenant_a, team, ready):
    from delivery.models import SenderDomain

    campaign = approved(tenant_a, team, ready)
    with tenant_context(tenant_a):
        SenderDomain.objects.filter(pk=ready["domain"].pk).update(status=SenderDomain.Status.UNVERIFIED)
    with pytest.raises(CampaignError, match="verified"):
        workflow.campaign_schedule(tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign)


def test_pause_holds_queued_messages_resume_releases_and_cancel_ends_them(tenant_a, team, ready):
    opt_in(tenant_a, contacts(tenant_a, 3))
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    marketer = team["marketer"].actor

    def states():
        with tenant_context(tenant_a):
            rows = Message.objects.filter(source_type="campaign", source_id=str(campaign.pk))
            return sorted({(m.state, m.held) for m in rows})

    campaign = workflow.campaign_pause(tenant=tenant_a, actor=marketer, campaign=campaign)
    assert campaign.status == Status.PAUSED
    assert states() == [("queued", True)]
    campaign = workflow.campaign_resume(tenant=tenant_a, actor=marketer, campaign=campaign)
    assert campaign.status == Status.SENDING
    assert states() == [("queued", False)]
    campaign = workflow.campaign_cancel(
        tenant=tenant_a, actor=marketer, campaign=campaign, comment="Wrong date"
    )
    assert campaign.status == Status.CANCELLED
    assert states() == [("cancelled", False)]
    with pytest.raises(CampaignConflict):
        workflow.campaign_resume(tenant=tenant_a, actor=marketer, campaign=campaign)


def test_campaign_is_sent_once_no_message_waits(tenant_a, team, ready):
    opt_in(tenant_a, contacts(tenant_a, 2))
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    assert not launch.campaign_complete_if_done(tenant=tenant_a, campaign_id=campaign.pk)
    with tenant_context(tenant_a):
        Message.objects.filter(source_id=str(campaign.pk)).update(state=Message.State.DELIVERED_TLS)
    assert launch.campaign_complete_if_done(tenant=tenant_a, campaign_id=campaign.pk)
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=campaign.pk).status == Status.SENT


def test_another_tenants_reviewer_cannot_see_the_campaign(tenant_a, tenant_b, team, ready):
    from healthmail.accounts.roles import Role

    campaign = workflow.campaign_submit(
        tenant=tenant_a, actor=team["marketer"].actor, campaign=draft(tenant_a, team, ready)
    )
    foreign = person(tenant_b, Role.COMPLIANCE_OFFICER)
    with pytest.raises(Campaign.DoesNotExist):
        workflow.campaign_approve(
            tenant=tenant_b, actor=foreign.actor, role=foreign.role, campaign=campaign, kind="compliance"
        )

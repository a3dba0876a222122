"""Warn before sending nothing: the audience after the send gate and the frequency cap, with the
reasons people are left out, before submitting and before scheduling; a campaign that would reach
nobody is scheduled and launched only with an explicit confirmation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from campaigns.models import Campaign, CampaignExclusion
from campaigns.services import audience, launch, workflow
from campaigns.services.common import CampaignError
from consent import gate, suppressions
from consent import services as consent
from consent.models import Source, Suppression
from contacts.models import Contact
from delivery.models import Message
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from segmentation.models import SegmentSnapshot
from tests.conftest import sign_in

from .conftest import approved, contacts, draft, opt_in, scheduled

pytestmark = pytest.mark.django_db


def _suppress(tenant, contact_id, reason=Suppression.Reason.COMPLAINT):
    with tenant_context(tenant):
        contact = Contact.objects.get(pk=contact_id)
    suppressions.suppression_add(tenant=tenant, actor=Actor.system("tests"), reason=reason, contact=contact)


def _revoke(tenant, contact_ids):
    topic = consent.topic_by_key(tenant=tenant, key="marketing_newsletters")
    evidence = consent.Evidence(source=Source.IMPORT, actor=Actor.system("tests"))
    with tenant_context(tenant):
        for contact in Contact.objects.filter(pk__in=list(contact_ids)):
            consent.consent_revoke(tenant=tenant, contact=contact, topic=topic, evidence=evidence)


def _written(tenant, campaign) -> tuple[int, int, int]:
    with tenant_context(tenant):
        return (
            Message.objects.filter(source_id=str(campaign.pk)).count(),
            CampaignExclusion.objects.filter(campaign=campaign).count(),
            SegmentSnapshot.objects.count(),
        )


def test_preview_counts_after_the_gate_with_labelled_reasons_and_writes_nothing(tenant_a, team, ready):
    ids = contacts(tenant_a, 30)
    opt_in(tenant_a, ids[:25])  # five never opted in
    _suppress(tenant_a, ids[0])
    campaign = draft(tenant_a, team, ready)

    preview = audience.campaign_audience_preview(tenant=tenant_a, campaign=campaign)

    assert (preview.members, preview.sendable) == (30, 24)
    assert [(e.code, e.label, e.count) for e in preview.exclusions] == [
        ("no_opt_in", "Never opted in to the topic", 5),
        ("suppressed_complaint", "Suppressed: spam complaint", 1),
    ]
    assert [e.display for e in preview.exclusions] == ["fewer than 11", "fewer than 11"]
    assert not preview.sends_nothing
    assert _written(tenant_a, campaign) == (0, 0, 0)


def test_the_preview_says_what_the_launch_then_does(tenant_a, team, ready):
    ids = contacts(tenant_a, 12)
    opt_in(tenant_a, ids[:8])
    _suppress(tenant_a, ids[0])
    campaign = scheduled(tenant_a, team, ready)
    preview = audience.campaign_audience_preview(tenant=tenant_a, campaign=campaign)

    launched = launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)

    assert launched.recipient_count == preview.sendable == 7
    assert launched.excluded_counts == {e.code: e.count for e in preview.exclusions}


def test_scheduling_a_campaign_that_would_reach_nobody_needs_confirmation(tenant_a, team, ready):
    contacts(tenant_a, 3)  # none opted in
    campaign = approved(tenant_a, team, ready)

    with pytest.raises(CampaignError) as refused:
        workflow.campaign_schedule(tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign)

    assert refused.value.code == "audience_empty"
    assert "would send no messages" in refused.value.message
    assert "Never opted in to the topic: fewer than 11" in refused.value.message
    assert "no_opt_in" not in refused.value.message
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.APPROVED

    confirmed = workflow.campaign_schedule(
        tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign, confirm_empty=True
    )
    assert confirmed.status == Campaign.Status.SCHEDULED
    assert confirmed.empty_send_confirmed


def test_an_empty_segment_is_named_as_such(tenant_a, team, ready):
    campaign = approved(tenant_a, team, ready)  # no contacts at all
    with pytest.raises(CampaignError, match="the segment is empty"):
        workflow.campaign_schedule(tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign)


def test_a_launch_that_would_reach_nobody_is_refused_without_confirmation(tenant_a, team, ready):
    """Consent withdrawn between scheduling and the launch: nothing goes, and the page says why."""
    ids = contacts(tenant_a, 4)
    opt_in(tenant_a, ids)
    campaign = scheduled(tenant_a, team, ready)
    _revoke(tenant_a, ids)

    result = launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)

    assert result.status == Campaign.Status.APPROVED
    assert "Nothing was sent" in result.status_reason
    assert "Withdrew their opt-in to the topic" in result.status_reason
    messages, exclusions, _ = _written(tenant_a, campaign)
    assert (messages, exclusions) == (0, 0)


def test_a_confirmed_empty_launch_goes_ahead_and_records_why(tenant_a, team, ready):
    ids = contacts(tenant_a, 4)
    campaign = scheduled(tenant_a, team, ready, confirm_empty=True)

    result = launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)

    assert result.status == Campaign.Status.SENDING
    assert result.recipient_count == 0
    assert result.excluded_counts == {"no_opt_in": len(ids)}


@pytest.mark.parametrize(
    ("count", "shown"), [(0, "0"), (1, "fewer than 11"), (10, "fewer than 11"), (11, "11")]
)
def test_counts_shown_to_a_marketer_are_masked_when_small(count, shown):
    assert audience.count_display(count) == shown


def test_the_mask_follows_the_disclosure_policy_k(settings):
    settings.DISCLOSURE_K = 20
    assert audience.count_display(15) == "fewer than 20"


def test_every_refusal_the_gate_can_give_has_a_label():
    source = Path(gate.__file__).read_text()
    codes = set(re.findall(r'_refuse\(\s*"([a-z_]+)"', source)) | set(
        re.findall(r'\{"revoked": "([a-z_]+)", "expired": "([a-z_]+)"\}', source)[0]
    )
    codes |= {"no_opt_in"}
    assert len(codes) >= 12  # the scan found the table
    assert codes <= set(gate.REFUSAL_LABELS)
    for reason in Suppression.Reason.values:
        assert gate.refusal_label(f"suppressed_{reason}").startswith("Suppressed: ")
    assert audience.exclusion_label("frequency_cap") == "Reached the frequency cap"


def test_draft_page_shows_the_audience_after_the_gate(client, tenant_a, team, ready):
    ids = contacts(tenant_a, 14)
    opt_in(tenant_a, ids[:12])
    campaign = draft(tenant_a, team, ready)
    sign_in(client, team["marketer"].user, tenant=tenant_a)

    page = client.get(reverse("campaigns:campaign_detail", args=[campaign.pk])).content.decode()

    assert "Who would receive it now" in page
    assert 'data-testid="audience-sendable">12<' in page
    assert "Never opted in to the topic" in page
    assert "would send no messages" not in page
    assert 'name="confirm_empty"' not in page


def test_approved_page_warns_and_the_schedule_button_needs_the_confirmation(client, tenant_a, team, ready):
    contacts(tenant_a, 3)
    campaign = approved(tenant_a, team, ready)
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    url = reverse("campaigns:campaign_detail", args=[campaign.pk])

    page = client.get(url).content.decode()
    assert "This campaign would send no messages." in page
    assert 'name="confirm_empty"' in page

    schedule = reverse("campaigns:campaign_schedule", args=[campaign.pk])
    refused = client.post(schedule, {"when": "now", "timezone_mode": "tenant"}, follow=True).content.decode()
    assert "Confirm to schedule it anyway" in refused
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.APPROVED

    client.post(schedule, {"when": "now", "timezone_mode": "tenant", "confirm_empty": "on"})
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SCHEDULED


def test_a_phi_campaigns_preview_shows_a_marketer_what_the_segment_count_would(client, tenant_a, team, ready):
    """The preview counts the segment's members: for a campaign chosen by clinical criteria it takes
    the disclosure policy like the segment count does, or it would be a way around it."""
    opt_in(tenant_a, contacts(tenant_a, 27))
    campaign = draft(tenant_a, team, ready)
    with tenant_context(tenant_a):
        Campaign.objects.filter(pk=campaign.pk).update(uses_phi=True)
    url = reverse("campaigns:campaign_detail", args=[campaign.pk])

    def members(person) -> str:
        sign_in(client, person.user, tenant=tenant_a)
        page = client.get(url).content.decode()
        return re.search(r'data-testid="audience-members">([^<]*)<', page).group(1)

    assert members(team["compliance"]) == "27"  # reads PHI: exact
    shown = members(team["marketer"])
    assert shown != "27"
    assert not re.fullmatch(r"2[0-9]", shown)  # rounded, never the exact figure

"""A/B tests: the test share goes out split between variants, the winner is chosen on its metric
after the waiting time, and the rest of the audience gets the winner."""

from __future__ import annotations

import datetime
from collections import Counter

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignApproval
from campaigns.services import ab, launch, workflow
from campaigns.services.ab import VariantStats, choose_winner
from campaigns.services.campaigns import VariantInput
from delivery.models import EngagementEvent, Message
from delivery.outbox import message_content
from healthmail.tenants.context import tenant_context
from tests.factories import CampaignFactory

from .conftest import contacts, opt_in, scheduled, template

pytestmark = pytest.mark.django_db


def test_winner_is_the_best_rate_not_the_biggest_count():
    stats = [VariantStats("A", sent=100, opens=30), VariantStats("B", sent=50, opens=20)]
    assert choose_winner(stats, "opens") == "B"


def test_ties_go_to_the_larger_count_then_the_earlier_variant():
    assert choose_winner([VariantStats("A", 10, clicks=1), VariantStats("B", 20, clicks=2)], "clicks") == "B"
    assert (
        choose_winner([VariantStats("A", 10), VariantStats("B", 10), VariantStats("C", 10)], "clicks") == "A"
    )
    assert (
        choose_winner(
            [VariantStats("A", 10, conversions=1), VariantStats("B", 10, conversions=3)], "conversions"
        )
        == "B"
    )


def _subject_test(tenant, team, ready, **overrides):
    return scheduled(
        tenant,
        team,
        ready,
        ab_enabled=True,
        ab_dimension=Campaign.AbDimension.SUBJECT,
        ab_test_percent=50,
        ab_winner_metric="opens",
        ab_wait_hours=2,
        variants=[VariantInput("A", "Flu shots are here"), VariantInput("B", "Your flu shot is waiting")],
        **overrides,
    )


def _messages(tenant, campaign):
    with tenant_context(tenant):
        return list(
            Message.objects.filter(source_type="campaign", source_id=str(campaign.pk)).order_by("created_at")
        )


def test_ab_test_sends_the_share_then_the_winner_to_the_rest(tenant_a, team, ready):
    ids = contacts(tenant_a, 20)
    opt_in(tenant_a, ids)
    campaign = _subject_test(tenant_a, team, ready)
    start = timezone.now()
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk, now=start)

    test_group = _messages(tenant_a, campaign)
    assert len(test_group) == 10
    assert Counter(m.variant for m in test_group) == {"A": 5, "B": 5}
    with tenant_context(tenant_a):
        subjects = {m.variant: message_content(m).subject for m in test_group}
    assert subjects == {"A": "Flu shots are here", "B": "Your flu shot is waiting"}

    # B is opened more (human opens; bot opens do not count).
    with tenant_context(tenant_a):
        for message in test_group:
            opened = message.variant == "B" or message is test_group[0]
            if opened:
                EngagementEvent.objects.create(
                    tenant=tenant_a,
                    message=message,
                    contact_id=message.contact_id,
                    kind="open",
                    source_type="campaign",
                    source_id=str(campaign.pk),
                    variant=message.variant,
                    occurred_at=start,
                )
            EngagementEvent.objects.create(
                tenant=tenant_a,
                message=message,
                kind="open",
                source_type="campaign",
                source_id=str(campaign.pk),
                variant="A",
                occurred_at=start,
                is_bot=True,
            )

    assert ab.campaign_ab_decide(tenant=tenant_a, campaign_id=campaign.pk, now=start) is None  # too early
    decided = ab.campaign_ab_decide(
        tenant=tenant_a, campaign_id=campaign.pk, now=start + datetime.timedelta(hours=2, minutes=1)
    )

    assert decided.ab_winner == "B"
    everyone = _messages(tenant_a, campaign)
    assert len(everyone) == 20
    assert {m.contact_id for m in everyone} == set(ids)
    remainder = [m for m in everyone if m not in test_group]
    assert {m.variant for m in remainder} == {"B"}
    assert decided.recipient_count == 20
    # Decided once: a second run (the sweep) changes nothing.
    assert (
        ab.campaign_ab_decide(
            tenant=tenant_a, campaign_id=campaign.pk, now=start + datetime.timedelta(hours=5)
        )
        is None
    )
    assert len(_messages(tenant_a, campaign)) == 20


def test_campaign_waits_for_the_winner_before_it_counts_as_sent(tenant_a, team, ready):
    opt_in(tenant_a, contacts(tenant_a, 4))
    campaign = _subject_test(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    with tenant_context(tenant_a):
        Message.objects.filter(source_id=str(campaign.pk)).update(state=Message.State.DELIVERED_TLS)
    assert not launch.campaign_complete_if_done(tenant=tenant_a, campaign_id=campaign.pk)


def test_ab_needs_two_to_four_variants(tenant_a, team, ready):
    from campaigns.services.common import CampaignError

    from .conftest import draft

    with pytest.raises(CampaignError, match="2 to 4"):
        draft(tenant_a, team, ready, ab_enabled=True, variants=[VariantInput("A", "One")])
    with pytest.raises(CampaignError, match="2 to 4"):
        draft(tenant_a, team, ready, ab_enabled=True, variants=[VariantInput(k, f"S {k}") for k in "ABCDE"])


def test_phi_in_a_variant_subject_is_a_lint_error(tenant_a, team, ready):
    from .conftest import draft

    campaign = draft(
        tenant_a,
        team,
        ready,
        ab_enabled=True,
        variants=[VariantInput("A", "Hello"), VariantInput("B", "About {{ contact.provider }}")],
    )
    assert "phi_in_subject" in {f["code"] for f in campaign.lint}


def test_a_content_test_without_a_main_template_can_be_reviewed(tenant_a, team, ready):
    """Each variant of a content test carries its own template, so the campaign may have none: its
    reviews record no campaign-level version (they once failed on a NOT NULL column, reported as a
    review already given, and the campaign could never be approved)."""
    second = template(tenant_a, team["marketer"].actor, name="Flu season, shorter")
    campaign = CampaignFactory(
        tenant=tenant_a,
        actor=team["marketer"].actor,
        template=None,
        segment=ready["segment"],
        sender_domain=ready["domain"],
        ab_enabled=True,
        ab_dimension=Campaign.AbDimension.CONTENT,
        ab_test_percent=50,
        ab_winner_metric="clicks",
        ab_wait_hours=2,
        variants=[
            VariantInput("A", template_id=ready["template"].pk),
            VariantInput("B", template_id=second.pk),
        ],
    )
    campaign = workflow.campaign_submit(tenant=tenant_a, actor=team["marketer"].actor, campaign=campaign)
    assert campaign.status == Campaign.Status.IN_REVIEW
    assert campaign.template_version_id is None
    compliance = team["compliance"]
    campaign = workflow.campaign_approve(
        tenant=tenant_a, actor=compliance.actor, role=compliance.role, campaign=campaign, kind="compliance"
    )
    assert campaign.status == Campaign.Status.APPROVED
    with tenant_context(tenant_a):
        review = CampaignApproval.objects.get(campaign=campaign)
    assert review.template_version_id is None

"""Launch: snapshot, send gate and frequency cap in batch, one outbox row per allowed recipient,
every exclusion recorded with its reason, and the content rendered at send time."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignExclusion
from campaigns.services import launch, workflow
from consent import suppressions
from consent.models import Suppression
from contacts.models import Contact
from delivery.models import Message, Stream
from delivery.outbox import message_content
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context

from .conftest import contacts, opt_in, scheduled

pytestmark = pytest.mark.django_db


def _messages(tenant, campaign):
    with tenant_context(tenant):
        return list(Message.objects.filter(source_type="campaign", source_id=str(campaign.pk)))


def test_launch_queues_one_message_per_allowed_recipient_and_records_exclusions(tenant_a, team, ready):
    ids = contacts(tenant_a, 12)
    opt_in(tenant_a, ids[:8])  # four never opted in
    with tenant_context(tenant_a):
        suppressed = Contact.objects.get(pk=ids[0])
    suppressions.suppression_add(
        tenant=tenant_a, actor=Actor.system("tests"), reason=Suppression.Reason.COMPLAINT, contact=suppressed
    )
    campaign = scheduled(tenant_a, team, ready)

    launched = launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)

    assert launched.status == Campaign.Status.SENDING
    messages = _messages(tenant_a, campaign)
    assert {m.contact_id for m in messages} == set(ids[1:8])
    assert all(m.stream == Stream.MARKETING and m.topic == "marketing_newsletters" for m in messages)
    assert all(m.content is None for m in messages)  # rendered at send time
    assert launched.recipient_count == 7
    assert launched.excluded_counts == {"no_opt_in": 4, "suppressed_complaint": 1}
    with tenant_context(tenant_a):
        reasons = dict(
            CampaignExclusion.objects.filter(campaign=campaign).values_list("contact_id", "reason")
        )
    assert reasons[ids[0]] == "suppressed_complaint"
    assert {reasons[i] for i in ids[8:]} == {"no_opt_in"}


def test_renderer_merges_the_contact_at_send_time_with_footer_and_unsubscribe(tenant_a, team, ready):
    ids = contacts(tenant_a, 2)
    opt_in(tenant_a, ids)
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    message = _messages(tenant_a, campaign)[0]

    with tenant_context(tenant_a):
        content = message_content(message)

    assert content.subject == "Flu shots are here"
    assert "Hello Synthetic," in content.html, content.html[:1500]
    assert tenant_a.postal_address in content.html
    assert "/p/" in content.html
    assert "Unsubscribe" in content.html
    assert "Unsubscribe:" in content.text


def test_frequency_cap_excludes_contacts_who_had_enough_mail(tenant_a, team, ready):
    ids = contacts(tenant_a, 4)
    opt_in(tenant_a, ids)
    first = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=first.pk)

    second = scheduled(tenant_a, team, ready, confirm_empty=True, frequency_cap_count=1, frequency_cap_days=7)
    launched = launch.campaign_launch(tenant=tenant_a, campaign_id=second.pk)

    assert launched.excluded_counts == {"frequency_cap": 4}
    assert _messages(tenant_a, second) == []


def test_empty_segment_at_launch_sends_nothing_and_says_why(tenant_a, team, ready):
    campaign = scheduled(tenant_a, team, ready, confirm_empty=True)  # no contacts at all

    result = launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)

    assert result.status == Campaign.Status.APPROVED
    assert "empty" in result.status_reason
    assert _messages(tenant_a, campaign) == []


def test_launch_runs_once_even_when_called_twice(tenant_a, team, ready):
    ids = contacts(tenant_a, 3)
    opt_in(tenant_a, ids)
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    assert launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk) is None
    assert len(_messages(tenant_a, campaign)) == 3


def test_schedule_in_the_future_waits_and_sets_not_before(tenant_a, team, ready):
    ids = contacts(tenant_a, 2)
    opt_in(tenant_a, ids)
    from .conftest import approved

    campaign = approved(tenant_a, team, ready)
    tomorrow = timezone.localdate() + datetime.timedelta(days=2)
    campaign = workflow.campaign_schedule(
        tenant=tenant_a,
        actor=team["marketer"].actor,
        campaign=campaign,
        send_date=tomorrow,
        send_time=datetime.time(9, 0),
    )
    assert launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk) is None  # too early
    later = campaign.scheduled_for + datetime.timedelta(minutes=1)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk, now=later)
    messages = _messages(tenant_a, campaign)
    assert len(messages) == 2

"""When messages may go: the organization's or each recipient's local time, a send-time window and a
throttle, written into the outbox as `not_before`; and the sweep that finds what is due."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.services import launch, scheduling, sweep, workflow
from delivery.models import Message
from healthmail.tenants.context import tenant_context

from .conftest import approved, contacts, opt_in, scheduled

UTC = datetime.UTC
NOW = datetime.datetime(2025, 3, 3, 12, 0, tzinfo=UTC)  # 07:00 in New York, 04:00 in Los Angeles


def _times(states, **overrides):
    values = {
        "states": states,
        "start": NOW,
        "now": NOW,
        "tenant_timezone": "America/New_York",
        "send_date": None,
        "send_time": None,
        "recipient_mode": False,
        "window_start": None,
        "window_end": None,
        "throttle_per_hour": None,
    }
    values.update(overrides)
    return scheduling.send_times(**values)


def test_now_without_window_or_throttle_sends_at_once():
    assert _times(["TX", "CA"]) == [None, None]


def test_throttle_spreads_messages_over_the_hour():
    times = _times(["TX"] * 4, throttle_per_hour=2)
    assert times[0] is None  # the first goes at once
    assert times[1:] == [NOW + datetime.timedelta(minutes=30 * i) for i in (1, 2, 3)]


def test_window_moves_sends_to_the_next_opening():
    times = _times(["TX"], window_start=datetime.time(9, 0), window_end=datetime.time(17, 0))
    assert times == [datetime.datetime(2025, 3, 3, 9, 0, tzinfo=ZoneInfo("America/New_York"))]


def test_overnight_windows_work():
    inside = datetime.datetime(2025, 3, 3, 23, 0, tzinfo=ZoneInfo("America/New_York"))
    zone = ZoneInfo("America/New_York")
    assert scheduling.next_in_window(inside, zone, datetime.time(20, 0), datetime.time(6, 0)) == inside


def test_recipient_time_zone_sends_at_each_local_time():
    times = _times(
        ["NY", "CA"],
        recipient_mode=True,
        send_date=datetime.date(2025, 3, 4),
        send_time=datetime.time(9, 0),
        start=datetime.datetime(2025, 3, 4, 9, 0, tzinfo=ZoneInfo("America/New_York")),
    )
    assert times[0] == datetime.datetime(2025, 3, 4, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert times[1] == datetime.datetime(2025, 3, 4, 9, 0, tzinfo=ZoneInfo("America/Los_Angeles"))


def test_schedule_start_in_recipient_mode_is_the_earliest_zone():
    start = scheduling.schedule_start(
        tenant_timezone="America/Chicago",
        send_date=datetime.date(2025, 3, 4),
        send_time=datetime.time(9, 0),
        mode="recipient",
        now=NOW,
    )
    assert start == datetime.datetime(2025, 3, 4, 9, 0, tzinfo=ZoneInfo("Pacific/Guam"))


def test_ab_test_size_has_one_recipient_per_variant_at_least():
    assert scheduling.ab_test_size(1000, 10, 2) == 100
    assert scheduling.ab_test_size(5, 10, 3) == 3
    assert scheduling.ab_test_size(2, 10, 3) == 2
    assert scheduling.ab_test_size(7, 100, 2) == 7


@pytest.mark.django_db
def test_throttled_campaign_writes_not_before_into_the_outbox(tenant_a, team, ready):
    opt_in(tenant_a, contacts(tenant_a, 3))
    campaign = scheduled(tenant_a, team, ready, throttle_per_hour=60)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    with tenant_context(tenant_a):
        times = sorted(
            (m.not_before for m in Message.objects.filter(source_id=str(campaign.pk))),
            key=lambda t: t or datetime.datetime.min.replace(tzinfo=UTC),
        )
    assert times[0] is None
    assert times[2] - times[1] == datetime.timedelta(minutes=1)


@pytest.mark.django_db
def test_sweep_finds_due_launches_and_sending_campaigns(tenant_a, team, ready):
    opt_in(tenant_a, contacts(tenant_a, 2))
    due = scheduled(tenant_a, team, ready)
    later = approved(tenant_a, team, ready)
    later = workflow.campaign_schedule(
        tenant=tenant_a,
        actor=team["marketer"].actor,
        campaign=later,
        send_date=timezone.localdate() + datetime.timedelta(days=3),
        send_time=datetime.time(9, 0),
    )
    found = sweep.campaigns_due(now=datetime.datetime.now(UTC))
    assert (tenant_a.pk, due.pk) in found.launch
    assert (tenant_a.pk, later.pk) not in found.launch
    launch.campaign_launch(tenant=tenant_a, campaign_id=due.pk)
    found = sweep.campaigns_due(now=datetime.datetime.now(UTC))
    assert (tenant_a.pk, due.pk) in found.sending
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=later.pk).status == Campaign.Status.SCHEDULED

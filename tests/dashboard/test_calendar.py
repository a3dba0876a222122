"""The calendar of sends: month and week views, server-rendered; scheduled campaigns on their local
day, journey sends through the disclosure policy, frequency-cap warnings from the schedule, roles."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.services import workflow
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from journeys.models import Journey, JourneyVersion, Position
from tests.campaigns.conftest import approved, contacts
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db


def _scheduled_on(tenant, team, ready, day: datetime.date, **overrides):
    campaign = approved(tenant, team, ready, **overrides)
    return workflow.campaign_schedule(
        tenant=tenant,
        actor=team["marketer"].actor,
        campaign=campaign,
        send_date=day,
        send_time=datetime.time(10, 0),
        confirm_empty=True,
    )


def test_month_and_week_views_place_campaigns_on_their_day(client, tenant_a, team, ready):
    day = timezone.localdate() + datetime.timedelta(days=40)
    campaign = _scheduled_on(tenant_a, team, ready, day, name="Spring checkups")
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    url = reverse("dashboard:calendar")
    month = client.get(url, {"view": "month", "date": day.isoformat()}).content.decode()
    assert "Spring checkups" in month
    assert f"{day.day} {day:%b}" in month
    week = client.get(url, {"view": "week", "date": day.isoformat()}).content.decode()
    assert "Spring checkups" in week
    assert week.count('<td class="') == 7
    other_week = client.get(url, {"view": "week", "date": (day + datetime.timedelta(days=7)).isoformat()})
    assert "Spring checkups" not in other_week.content.decode()
    assert campaign.scheduled_for is not None


def test_frequency_cap_warning_when_other_sends_fall_in_the_window(client, tenant_a, team, ready):
    day = timezone.localdate() + datetime.timedelta(days=20)
    _scheduled_on(tenant_a, team, ready, day - datetime.timedelta(days=2), name="Flu reminder")
    _scheduled_on(
        tenant_a, team, ready, day, name="Capped newsletter", frequency_cap_count=1, frequency_cap_days=7
    )
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    page = client.get(reverse("dashboard:calendar"), {"date": day.isoformat()}).content.decode()
    assert 'data-testid="cap-warnings"' in page
    assert "allows 1 message(s) per 7 day(s), and 1 other send(s)" in page


def test_no_warning_without_a_cap_or_outside_the_window(client, tenant_a, team, ready):
    day = timezone.localdate() + datetime.timedelta(days=20)
    _scheduled_on(tenant_a, team, ready, day - datetime.timedelta(days=9), name="Long before")
    _scheduled_on(tenant_a, team, ready, day, name="Capped", frequency_cap_count=1, frequency_cap_days=7)
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    page = client.get(reverse("dashboard:calendar"), {"date": day.isoformat()}).content.decode()
    assert 'data-testid="cap-warnings"' not in page


def test_journey_sends_due_are_counted_through_the_policy(client, tenant_a, team):
    due = timezone.now() + datetime.timedelta(days=3)
    ids = contacts(tenant_a, 12)
    with tenant_context(tenant_a):
        journey = Journey.objects.create(tenant=tenant_a, name="Welcome series", status=Journey.Status.ACTIVE)
        version = JourneyVersion.objects.create(
            tenant=tenant_a,
            journey=journey,
            number=1,
            status="approved",
            definition={
                "entry": {"kind": "event", "event": "signed.up"},
                "start": "wait",
                "steps": {
                    "wait": {"type": "wait", "days": 3, "next": "hello"},
                    "hello": {"type": "send", "template_id": "x", "purpose": "marketing", "next": "wait"},
                },
            },
        )
        for contact_id in ids:
            Position.objects.create(
                tenant=tenant_a,
                journey=journey,
                version=version,
                contact_id=contact_id,
                step="wait",
                due_at=due,
                entered_at=timezone.now(),
                updated_at=timezone.now(),
            )
    sign_in(client, team["compliance"].user, tenant=tenant_a)
    local_day = timezone.localtime(due, timezone=zoneinfo.ZoneInfo(tenant_a.timezone)).date()
    page = client.get(
        reverse("dashboard:calendar"), {"view": "week", "date": local_day.isoformat()}
    ).content.decode()
    assert "Journey Welcome series: 12 sends" in page
    with tenant_context(tenant_a):
        Position.objects.filter(journey=journey).exclude(contact_id__in=ids[:3]).update(
            state="exited", due_at=None
        )
    page = client.get(
        reverse("dashboard:calendar"), {"view": "week", "date": local_day.isoformat()}
    ).content.decode()
    assert "Journey Welcome series: fewer than 11 send" in page


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.MARKETER, 200),
        (Role.COMPLIANCE_OFFICER, 200),
        (Role.TENANT_ADMIN, 200),
        (Role.CLINICAL_REVIEWER, 403),
    ],
)
def test_calendar_role_matrix(member_client, role, status):
    assert member_client(role).get(reverse("dashboard:calendar")).status_code == status


def test_bad_input_is_answered_clearly(member_client):
    client = member_client(Role.MARKETER)
    response = client.get(reverse("dashboard:calendar"), {"date": "2026-13-45", "view": "year"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Give the date as YYYY-MM-DD." in page
    assert "Choose the month or the week view." in page

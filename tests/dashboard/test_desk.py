"""The home page per role: the marketer's desk (campaigns, journeys, 30 days of sends and engagement,
deliverability) and the compliance officer's (approvals, alerts, holds, disposal runs, expiring
authorizations); every count through the disclosure policy; other roles keep their task list."""

from __future__ import annotations

import datetime
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import Alert
from campaigns.services import launch
from delivery.models import DeliveryReport, EngagementEvent, Message
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.campaigns.conftest import contacts, draft, opt_in, scheduled, segment, template, verified_domain
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db


def _chart(page: str, element_id: str) -> dict:
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page, re.DOTALL)
    assert found, element_id
    return json.loads(found.group(1))


def _sent(tenant, team, ready, *, recipients: int, delivered: int, opened: int, bounced: int = 0):
    opt_in(tenant, contacts(tenant, recipients))
    campaign = scheduled(tenant, team, ready)
    launch.campaign_launch(tenant=tenant, campaign_id=campaign.pk)
    yesterday = timezone.now() - datetime.timedelta(days=1)
    with tenant_context(tenant):
        rows = list(Message.objects.filter(source_id=str(campaign.pk)).order_by("pk"))
        for message in rows[:delivered]:
            message.state, message.finished_at = Message.State.DELIVERED_TLS, yesterday
        for message in rows[delivered : delivered + bounced]:
            message.state, message.finished_at = Message.State.BOUNCED, yesterday
        Message.objects.bulk_update(rows, ["state", "finished_at"])
        for message in rows[:opened]:
            EngagementEvent.objects.create(
                tenant=tenant,
                message=message,
                kind="open",
                source_type="campaign",
                source_id=str(campaign.pk),
                occurred_at=yesterday,
            )
        DeliveryReport.objects.create(
            tenant=tenant, message=rows[0], kind=DeliveryReport.Kind.COMPLAINT, matched_by="verp"
        )
    return campaign


def test_marketer_desk_shows_campaigns_and_charts_from_the_database(client, tenant_a, team, ready):
    campaign = _sent(tenant_a, team, ready, recipients=30, delivered=25, opened=14, bounced=2)
    planned = draft(tenant_a, team, ready, name="Next month newsletter")
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    page = client.get("/").content.decode()
    assert "<h1>Marketing</h1>" in page
    assert campaign.name in page
    assert planned.name in page
    engagement = _chart(page, "engagement-data")
    assert len(engagement["labels"]) == 30
    delivered = engagement["datasets"][0]["data"]
    assert delivered[-2] == 25  # yesterday, as the database counted (non-PHI campaign: exact from 11)
    assert engagement["datasets"][1]["data"][-2] == 14
    deliverability = dict(zip(*_chart(page, "deliverability-data").values(), strict=True))
    assert deliverability["Delivered over verified TLS"] == 25
    assert deliverability["Bounced"] is None  # 2: hidden, a gap in the chart
    assert deliverability["Complaints"] is None
    assert "<td>fewer than 11</td>" in page  # the table says what the chart leaves out
    assert "<script>" not in page


def test_desk_counts_go_through_the_disclosure_policy(client, tenant_a, team, ready, settings):
    _sent(tenant_a, team, ready, recipients=14, delivered=12, opened=3)
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    page = client.get("/").content.decode()
    assert "<td>3</td>" not in page
    assert _chart(page, "engagement-data")["datasets"][1]["data"][-2] is None
    settings.DISCLOSURE_ENABLED = False  # the defence off: the small count appears
    page = client.get("/").content.decode()
    assert _chart(page, "engagement-data")["datasets"][1]["data"][-2] == 3


def test_compliance_desk_lists_work_items(client, tenant_a, team, ready):
    from campaigns.services import workflow

    waiting = draft(tenant_a, team, ready, name="Needs review")
    workflow.campaign_submit(tenant=tenant_a, actor=team["marketer"].actor, campaign=waiting)
    with tenant_context(tenant_a):
        Alert.objects.create(
            tenant=tenant_a, rule="failed_sign_ins", severity="warning", summary="Many failed sign-ins"
        )
    sign_in(client, team["compliance"].user, tenant=tenant_a)
    page = client.get("/").content.decode()
    assert "<h1>Compliance</h1>" in page
    assert "Needs review" in page
    assert "Many failed sign-ins" in page
    assert "No hold in force." in page
    expiring = _chart(page, "expiring-data")
    assert [d["label"].split()[0] for d in expiring["datasets"]] == ["Marketing", "Research"]
    assert all(value in (None, 0) for d in expiring["datasets"] for value in d["data"])


@pytest.mark.parametrize(
    ("role", "heading"),
    [
        (Role.TENANT_ADMIN, "Organization administration"),
        (Role.CLINICAL_REVIEWER, "Clinical review"),
    ],
)
def test_other_roles_keep_their_task_list(member_client, role, heading):
    page = member_client(role).get("/").content.decode()
    assert f"<h1>{heading}</h1>" in page
    assert "engagement-data" not in page


def test_a_desk_never_shows_another_tenants_work(client, tenant_a, tenant_b, team, ready):
    from tests.campaigns.conftest import person

    other = person(tenant_b, Role.MARKETER)
    theirs = draft(
        tenant_b,
        {"marketer": other},
        {
            "domain": verified_domain(tenant_b),
            "template": template(tenant_b, other.actor, name="Theirs"),
            "segment": segment(tenant_b),
        },
        name="Tenant B private campaign",
    )
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    assert theirs.name not in client.get("/").content.decode()
    assert theirs.name not in client.get(reverse("dashboard:calendar")).content.decode()

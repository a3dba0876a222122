"""Campaign pages: who may open what, foreign ids answer 404, the builder and the review buttons
work end to end, and the report is aggregate, small-cell suppressed and CSV-safe."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from campaigns.models import Campaign, Template
from campaigns.services import launch
from consent import services as consent
from delivery.models import Message
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.conftest import sign_in

from .conftest import (
    GOOD_HTML,
    contacts,
    draft,
    opt_in,
    scheduled,
    segment,
    template,
    verified_domain,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "name", "status"),
    [
        (Role.MARKETER, "campaigns:campaign_list", 200),
        (Role.COMPLIANCE_OFFICER, "campaigns:campaign_list", 200),
        (Role.TENANT_ADMIN, "campaigns:campaign_list", 200),
        (Role.CLINICAL_REVIEWER, "campaigns:campaign_list", 200),
        (Role.MARKETER, "campaigns:template_list", 200),
        (Role.COMPLIANCE_OFFICER, "campaigns:template_list", 403),
        (Role.TENANT_ADMIN, "campaigns:campaign_new", 403),
        (Role.COMPLIANCE_OFFICER, "campaigns:campaign_new", 403),
        (Role.MARKETER, "campaigns:approval_list", 403),
        (Role.COMPLIANCE_OFFICER, "campaigns:approval_list", 200),
        (Role.CLINICAL_REVIEWER, "campaigns:approval_list", 200),
        (Role.MARKETER, "campaigns:branding", 200),
        (Role.TENANT_ADMIN, "campaigns:block_list", 403),
    ],
)
def test_role_matrix(member_client, role, name, status):
    assert member_client(role).get(reverse(name)).status_code == status


def test_foreign_and_missing_campaigns_and_templates_answer_404(member_client, tenant_a, tenant_b):
    from .conftest import person as make_person

    other = make_person(tenant_b, Role.MARKETER)
    foreign_template = template(tenant_b, other.actor, name="Theirs")
    foreign_campaign = draft(
        tenant_b,
        {"marketer": other},
        {"domain": verified_domain(tenant_b), "template": foreign_template, "segment": segment(tenant_b)},
    )
    client = member_client(Role.MARKETER)
    for url in (
        reverse("campaigns:campaign_detail", args=[foreign_campaign.pk]),
        reverse("campaigns:campaign_edit", args=[foreign_campaign.pk]),
        reverse("campaigns:campaign_progress", args=[foreign_campaign.pk]),
        reverse("campaigns:template_edit", args=[foreign_template.pk]),
        reverse("campaigns:template_preview", args=[foreign_template.pk]),
        reverse("campaigns:campaign_detail", args=[uuid.uuid4()]),
    ):
        assert client.get(url).status_code == 404, url
    response = client.post(reverse("campaigns:campaign_submit", args=[foreign_campaign.pk]))
    assert response.status_code == 404
    with tenant_context(tenant_b):
        assert Campaign.objects.get(pk=foreign_campaign.pk).status == Campaign.Status.DRAFT


def test_template_editor_saves_lints_and_previews(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    response = client.post(
        reverse("campaigns:template_new"),
        {
            "name": "Welcome",
            "kind": "marketing",
            "language": "en",
            "subject": "Welcome {{ contact.first_name }",
            "preheader": "",
            "html": GOOD_HTML,
            "text": "",
        },
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        saved = Template.objects.get(name="Welcome")
    page = client.get(response["Location"])
    assert "Syntax error" in page.content.decode()
    assert "line 1, column" in page.content.decode()
    # A Spanish variant, then the preview picks it.
    client.post(
        reverse("campaigns:template_edit", args=[saved.pk]),
        {
            "name": "Welcome",
            "language": "es",
            "subject": "Bienvenida",
            "preheader": "",
            "html": "<p>Hola</p>",
            "text": "Hola",
        },
    )
    preview = client.get(
        reverse("campaigns:template_preview", args=[saved.pk]) + "?language=es"
    ).content.decode()
    assert "Bienvenida" in preview
    assert "Phone preview" in preview
    assert 'sandbox=""' in preview


def test_test_send_goes_only_to_members_and_uses_synthetic_data(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    marketer = client.membership.user
    from healthmail.actors import Actor

    saved = template(tenant_a, Actor.for_user(marketer), name="Test me")
    url = reverse("campaigns:template_test_send", args=[saved.pk])
    client.post(url, {"address": "stranger@example.org"})
    with tenant_context(tenant_a):
        assert not Message.objects.filter(source_type="campaign_test").exists()
    client.post(url, {"address": marketer.email})
    with tenant_context(tenant_a):
        message = Message.objects.get(source_type="campaign_test")
        from delivery.outbox import message_content

        content = message_content(message)
    assert message.stream == "transactional"
    assert message.purpose == "operations"
    assert not message.uses_phi
    assert content.subject.startswith("[Test] ")
    assert "Hello Synthetic," in content.html


def test_marketer_builds_and_submits_then_compliance_approves_in_the_ui(client, tenant_a, team, ready):
    marketer, officer = team["marketer"], team["compliance"]
    topic = consent.topic_by_key(tenant=tenant_a, key="marketing_newsletters")
    sign_in(client, marketer.user, tenant=tenant_a)
    response = client.post(
        reverse("campaigns:campaign_new"),
        {
            "name": "Spring check-ups",
            "goal": "appointments",
            "purpose": "marketing",
            "topic": topic.pk,
            "segment": ready["segment"].pk,
            "template": ready["template"].pk,
            "sender_name": "Synthetic Clinic",
            "sender_domain": ready["domain"].pk,
            "from_local_part": "news",
            "encryption_policy": "tls_else_portal",
            "frequency_cap_days": 7,
            "track_engagement": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(tenant_a):
        campaign = Campaign.objects.get(name="Spring check-ups")
    assert campaign.primary_metric == "conversions"
    client.post(reverse("campaigns:campaign_submit", args=[campaign.pk]), {"comment": "Ready"})
    # The author cannot review; the compliance officer can.
    assert (
        client.post(
            reverse("campaigns:campaign_review", args=[campaign.pk]), {"decision": "approve"}
        ).status_code
        == 403
    )
    sign_in(client, officer.user, tenant=tenant_a)
    assert "Spring check-ups" in client.get(reverse("campaigns:approval_list")).content.decode()
    client.post(
        reverse("campaigns:campaign_review", args=[campaign.pk]), {"decision": "approve", "comment": "OK"}
    )
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.APPROVED
    sign_in(client, marketer.user, tenant=tenant_a)
    client.post(
        reverse("campaigns:campaign_schedule", args=[campaign.pk]),
        {"when": "now", "timezone_mode": "tenant", "confirm_empty": "on"},  # no contacts in this test
    )
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SCHEDULED


def test_report_is_aggregate_small_cell_suppressed_and_csv_safe(client, tenant_a, team, ready):
    opt_in(tenant_a, contacts(tenant_a, 15))
    campaign = scheduled(tenant_a, team, ready, name='=HYPERLINK("http://evil")')
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    with tenant_context(tenant_a):
        rows = list(Message.objects.filter(source_id=str(campaign.pk)))
        for message in rows[:12]:
            message.state = Message.State.DELIVERED_TLS
        for message in rows[12:]:
            message.state = Message.State.BOUNCED
        Message.objects.bulk_update(rows, ["state"])
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    page = client.get(reverse("campaigns:campaign_report", args=[campaign.pk])).content.decode()
    assert 'data-chart="delivery-data"' in page
    assert "fewer than 11" in page
    assert ">12<" in page
    csv_body = client.get(reverse("campaigns:campaign_report_csv", args=[campaign.pk])).content.decode()
    assert "'=HYPERLINK" in csv_body
    assert '"Bounced","fewer than 11"' in csv_body


def test_editing_a_sending_campaign_in_the_ui_is_refused(client, tenant_a, team, ready):
    opt_in(tenant_a, contacts(tenant_a, 2))
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    response = client.get(reverse("campaigns:campaign_edit", args=[campaign.pk]), follow=True)
    assert "can no longer be edited" in response.content.decode()


def test_detail_shows_exclusions_and_progress(client, tenant_a, team, ready):
    ids = contacts(tenant_a, 4)
    opt_in(tenant_a, ids[:2])
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    page = client.get(reverse("campaigns:campaign_detail", args=[campaign.pk])).content.decode()
    assert "Never opted in to the topic" in page
    assert "no_opt_in" not in page  # a label, not the code
    # Small audience figures go through the disclosure policy: never the exact 2 queued or 2 excluded.
    assert "Queued: fewer than 11" in page
    assert "Queued: 2" not in page
    assert "<td>2</td>" not in page
    partial = client.get(reverse("campaigns:campaign_progress", args=[campaign.pk])).content.decode()
    assert 'hx-trigger="every 3s"' in partial
    assert "Sending" in partial

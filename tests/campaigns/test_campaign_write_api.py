"""Campaigns written over the API (campaigns:write) and their report (campaigns:report): the pages'
services, four eyes with the key's creator as the author, idempotent retries, counts through the
disclosure policy."""

from __future__ import annotations

import json

import pytest

from campaigns.models import Campaign
from campaigns.services import launch, workflow
from consent import services as consent
from healthmail.accounts.roles import Role
from healthmail.errors import PermissionRefused
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem, audit_events

from .conftest import contacts, opt_in, person

pytestmark = pytest.mark.django_db
WRITER = ["campaigns:write"]


def _body(tenant, ready, **overrides) -> dict:
    topic = consent.topic_by_key(tenant=tenant, key="marketing_newsletters")
    return {
        "name": "Flu shots (API)",
        "template_id": str(ready["template"].pk),
        "segment_id": str(ready["segment"].pk),
        "topic_id": str(topic.pk),
        "sender_domain_id": str(ready["domain"].pk),
        "sender_name": "Synthetic Clinic",
        **overrides,
    }


def _status(campaign_id) -> str:
    return Campaign.objects.values_list("status", flat=True).get(pk=campaign_id)


def test_the_whole_path_with_a_second_person_approving(api, issue_key, tenant_a, team, ready):
    compliance = team["compliance"]
    client = api(issue_key(scopes=[*WRITER, "campaigns:report"], by=compliance.user))

    created = client.post("/api/v1/campaigns", json.dumps(_body(tenant_a, ready)))
    assert created.status_code == 201, created.content
    campaign_id = created.json()["id"]
    submitted = client.post(f"/api/v1/campaigns/{campaign_id}/submit", json.dumps({"comment": "Ready"}))
    assert submitted.status_code == 200, submitted.content
    assert submitted.json()["status"] == "in_review"

    with tenant_context(tenant_a):
        campaign = Campaign.objects.get(pk=campaign_id)
        assert (campaign.created_by_id, campaign.submitted_by_id) == (compliance.user.pk, compliance.user.pk)
    # The person who created the key wrote and submitted the campaign: they may not approve it.
    with pytest.raises(PermissionRefused) as refused:
        workflow.campaign_approve(
            tenant=tenant_a,
            actor=compliance.actor,
            role=compliance.role,
            campaign=campaign,
            kind="compliance",
        )
    assert refused.value.code == "own_campaign"
    other = person(tenant_a, Role.COMPLIANCE_OFFICER)
    workflow.campaign_approve(
        tenant=tenant_a, actor=other.actor, role=other.role, campaign=campaign, kind="compliance"
    )

    opt_in(tenant_a, contacts(tenant_a, 3))
    scheduled = client.post(f"/api/v1/campaigns/{campaign_id}/schedule", json.dumps({}))
    assert scheduled.json()["status"] == "scheduled", scheduled.content
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign_id)
    paused = client.post(f"/api/v1/campaigns/{campaign_id}/pause", json.dumps({"comment": "Hold"}))
    assert paused.json()["status"] == "paused", paused.content
    assert_problem(client.post(f"/api/v1/campaigns/{campaign_id}/pause", "{}"), 409, "campaign_state")
    resumed = client.post(f"/api/v1/campaigns/{campaign_id}/resume", "{}")
    assert resumed.json()["status"] == "sending", resumed.content

    with tenant_context(tenant_a):
        assert _status(campaign_id) == "sending"
    steps = [
        (e.action, e.actor_type)
        for e in audit_events(tenant=tenant_a)
        if e.action.startswith("campaign.") and e.action != "campaign.template_create"
    ]
    assert [s for s in steps if s[1] == "api_key"] == [
        (f"campaign.{step}", "api_key") for step in ("create", "submit", "schedule", "pause", "resume")
    ]


def test_a_key_no_person_created_cannot_write_campaigns(api, issue_key, tenant_a, ready):
    client = api(issue_key(scopes=WRITER))  # made by the system: nobody answers for it
    assert_problem(
        client.post("/api/v1/campaigns", json.dumps(_body(tenant_a, ready))), 403, "key_without_person"
    )
    with tenant_context(tenant_a):
        assert not Campaign.objects.exists()


def test_scopes_are_exact(api, issue_key, tenant_a, team, ready):
    reader = api(issue_key(scopes=["campaigns:read", "templates:write"], by=team["marketer"].user))
    assert_problem(reader.post("/api/v1/campaigns", json.dumps(_body(tenant_a, ready))), 403)
    writer = api(issue_key(scopes=WRITER, by=team["marketer"].user))
    created = writer.post("/api/v1/campaigns", json.dumps(_body(tenant_a, ready))).json()
    assert_problem(writer.get(f"/api/v1/campaigns/{created['id']}/report"), 403)


def test_refusals_are_problems_and_write_nothing(api, issue_key, tenant_a, team, ready):
    client = api(issue_key(scopes=WRITER, by=team["marketer"].user))
    assert_problem(
        client.post("/api/v1/campaigns", json.dumps(_body(tenant_a, ready, status="approved"))), 422
    )
    missing = _body(tenant_a, ready, segment_id="00000000-0000-4000-8000-000000000000")
    assert_problem(client.post("/api/v1/campaigns", json.dumps(missing)), 404)
    with tenant_context(tenant_a):
        assert not Campaign.objects.exists()
    # A draft with compliance errors (a marketing campaign without its consent topic) is not submitted.
    assert_problem(client.post("/api/v1/campaigns", json.dumps(_body(tenant_a, ready, topic_id=None))), 422)
    no_topic = {k: v for k, v in _body(tenant_a, ready).items() if k != "topic_id"}
    draft_id = client.post("/api/v1/campaigns", json.dumps(no_topic)).json()["id"]
    body = assert_problem(client.post(f"/api/v1/campaigns/{draft_id}/submit", "{}"), 422, "lint_errors")
    assert body["errors"]
    with tenant_context(tenant_a):
        assert _status(draft_id) == "draft"


def test_a_retry_with_the_same_idempotency_key_answers_the_first_result(
    api, issue_key, tenant_a, team, ready
):
    client = api(issue_key(scopes=WRITER, by=team["marketer"].user))
    body = json.dumps(_body(tenant_a, ready))
    first = client.post("/api/v1/campaigns", body, HTTP_IDEMPOTENCY_KEY="create-1")
    again = client.post("/api/v1/campaigns", body, HTTP_IDEMPOTENCY_KEY="create-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    campaign_id = first.json()["id"]
    submit = f"/api/v1/campaigns/{campaign_id}/submit"
    assert client.post(submit, "{}", HTTP_IDEMPOTENCY_KEY="submit-1").status_code == 200
    assert client.post(submit, "{}", HTTP_IDEMPOTENCY_KEY="submit-1").status_code == 200
    assert_problem(client.post(submit, "{}", HTTP_IDEMPOTENCY_KEY="submit-2"), 409, "campaign_state")
    with tenant_context(tenant_a):
        assert Campaign.objects.count() == 1


def test_the_report_passes_the_disclosure_policy_and_is_recorded(api, issue_key, tenant_a, team, ready):
    from tests.campaigns.conftest import scheduled

    opt_in(tenant_a, contacts(tenant_a, 3))
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    client = api(issue_key(scopes=["campaigns:report"]))

    report = client.get(f"/api/v1/campaigns/{campaign.pk}/report")

    assert report.status_code == 200, report.content
    cells = {m["metric"]: m["cells"] for m in report.json()["metrics"]}
    # Three messages queued: below the smallest group the policy shows, so masked, not "3".
    queued = cells["sent"]  # nothing sent yet: 0 is said honestly (the audience uses no PHI)
    assert queued == [{"column": "total", "value": 0, "display": "0", "exact": True}]
    with tenant_context(tenant_a):
        from delivery.models import Message

        Message.objects.filter(source_type="campaign").update(state=Message.State.DELIVERED_TLS)
    cells = {
        m["metric"]: m["cells"]
        for m in client.get(f"/api/v1/campaigns/{campaign.pk}/report").json()["metrics"]
    }
    assert cells["delivered_tls"] == [
        {"column": "total", "value": None, "display": "fewer than 11", "exact": False}
    ]
    exports = [e for e in audit_events(tenant=tenant_a) if e.action == "campaign.report_export"]
    assert [(e.actor_type, e.details["format"]) for e in exports] == [("api_key", "api"), ("api_key", "api")]

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


def test_a_key_no_person_created_cannot_write_campaigns(api, issue_key, tenant_a, team, ready):
    client = api(issue_key(scopes=WRITER))  # made by the system: nobody answers for it
    assert_problem(
        client.post("/api/v1/campaigns", json.dumps(_body(tenant_a, ready))), 403, "key_without_person"
    )
    with tenant_context(tenant_a):
        assert not Campaign.objects.exists()
    # Nor change one a person wrote: every step of the write API, even the brakes.
    from tests.campaigns.conftest import draft

    campaign = draft(tenant_a, team, ready)
    for step in ("submit", "withdraw", "schedule", "unschedule", "pause", "resume", "cancel"):
        refused = client.post(f"/api/v1/campaigns/{campaign.pk}/{step}", "{}")
        assert_problem(refused, 403, "key_without_person")
    with tenant_context(tenant_a):
        assert _status(campaign.pk) == "draft"


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


# --- Edit, unschedule, cancel ---------------------------------------------------------------------


def _created(client, tenant, ready, **overrides) -> str:
    created = client.post("/api/v1/campaigns", json.dumps(_body(tenant, ready, **overrides)))
    assert created.status_code == 201, created.content
    return created.json()["id"]


def test_an_edit_changes_what_is_sent_and_keeps_what_is_left_out(api, issue_key, tenant_a, team, ready):
    client = api(issue_key(scopes=WRITER, by=team["marketer"].user))
    campaign_id = _created(client, tenant_a, ready, throttle_per_hour=500)

    edited = client.generic(
        "PATCH",
        f"/api/v1/campaigns/{campaign_id}",
        json.dumps({"name": "Flu shots (renamed)", "throttle_per_hour": None, "goal": "adherence"}),
    )

    assert edited.status_code == 200, edited.content
    assert (edited.json()["name"], edited.json()["goal"], edited.json()["status"]) == (
        "Flu shots (renamed)",
        "adherence",
        "draft",
    )
    with tenant_context(tenant_a):
        campaign = Campaign.objects.get(pk=campaign_id)
        assert campaign.throttle_per_hour is None
        assert (campaign.template_id, campaign.segment_id, campaign.sender_domain_id) == (
            ready["template"].pk,
            ready["segment"].pk,
            ready["domain"].pk,
        )
        assert campaign.topic is not None
        assert campaign.sender_name == "Synthetic Clinic"
    edits = [e for e in audit_events(tenant=tenant_a) if e.action == "campaign.edit"]
    assert [(e.actor_type, e.target_id) for e in edits] == [("api_key", campaign_id)]


def test_an_edit_after_approval_returns_the_campaign_to_draft(api, issue_key, tenant_a, team, ready):
    from tests.campaigns.conftest import approved

    campaign = approved(tenant_a, team, ready)
    client = api(issue_key(scopes=WRITER, by=team["marketer2"].user))

    edited = client.generic("PATCH", f"/api/v1/campaigns/{campaign.pk}", json.dumps({"name": "Changed"}))

    assert edited.json()["status"] == "draft", edited.content
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=campaign.pk).template_version_id is None
    # Approved once, edited: scheduling it now is refused, it needs a new review round.
    assert_problem(client.post(f"/api/v1/campaigns/{campaign.pk}/schedule", "{}"), 409, "campaign_state")


def test_a_campaign_on_its_way_cannot_be_edited(api, issue_key, tenant_a, team, ready):
    from tests.campaigns.conftest import scheduled

    opt_in(tenant_a, contacts(tenant_a, 2))
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    client = api(issue_key(scopes=WRITER, by=team["marketer"].user))

    refused = client.generic("PATCH", f"/api/v1/campaigns/{campaign.pk}", json.dumps({"name": "Late"}))

    assert_problem(refused, 409, "campaign_locked")
    with tenant_context(tenant_a):
        assert Campaign.objects.get(pk=campaign.pk).name == campaign.name


def test_edit_refusals_write_nothing(api, issue_key, tenant_a, team, ready):
    client = api(issue_key(scopes=WRITER, by=team["marketer"].user))
    campaign_id = _created(client, tenant_a, ready)
    path = f"/api/v1/campaigns/{campaign_id}"
    assert_problem(client.generic("PATCH", path, json.dumps({"status": "approved"})), 422)
    assert_problem(client.generic("PATCH", path, json.dumps({"sender_name": "Clinic\r\nBcc: x"})), 422)
    missing = {"segment_id": "00000000-0000-4000-8000-000000000000"}
    assert_problem(client.generic("PATCH", path, json.dumps(missing)), 404)
    personless = api(issue_key(scopes=WRITER))
    assert_problem(personless.generic("PATCH", path, json.dumps({"name": "x"})), 403, "key_without_person")
    reader = api(issue_key(scopes=["campaigns:read"], by=team["marketer"].user))
    assert_problem(reader.generic("PATCH", path, json.dumps({"name": "x"})), 403)
    with tenant_context(tenant_a):
        campaign = Campaign.objects.get(pk=campaign_id)
        assert (campaign.name, campaign.sender_name) == ("Flu shots (API)", "Synthetic Clinic")
    assert [e.action for e in audit_events(tenant=tenant_a) if e.action == "campaign.edit"] == []


def test_unschedule_then_cancel(api, issue_key, tenant_a, team, ready):
    from tests.campaigns.conftest import scheduled

    opt_in(tenant_a, contacts(tenant_a, 2))
    campaign = scheduled(tenant_a, team, ready)
    client = api(issue_key(scopes=WRITER, by=team["marketer"].user))

    assert_problem(client.post(f"/api/v1/campaigns/{campaign.pk}/unschedule", '{"comment": "x"}'), 422)
    unscheduled = client.post(f"/api/v1/campaigns/{campaign.pk}/unschedule", "{}")
    assert unscheduled.status_code == 200, unscheduled.content
    assert (unscheduled.json()["status"], unscheduled.json()["scheduled_for"]) == ("approved", None)
    assert_problem(client.post(f"/api/v1/campaigns/{campaign.pk}/unschedule", "{}"), 409, "campaign_state")

    cancelled = client.post(f"/api/v1/campaigns/{campaign.pk}/cancel", json.dumps({"comment": "Wrong week"}))
    assert cancelled.json()["status"] == "cancelled", cancelled.content
    assert_problem(client.post(f"/api/v1/campaigns/{campaign.pk}/cancel", "{}"), 409, "campaign_state")
    steps = [
        (e.action, e.actor_type)
        for e in audit_events(tenant=tenant_a)
        if e.actor_type == "api_key" and e.action.startswith("campaign.")
    ]
    assert steps == [("campaign.unschedule", "api_key"), ("campaign.cancel", "api_key")]


def test_cancelling_a_sending_campaign_cancels_its_queued_messages(api, issue_key, tenant_a, team, ready):
    from delivery.models import Message
    from tests.campaigns.conftest import scheduled

    opt_in(tenant_a, contacts(tenant_a, 3))
    campaign = scheduled(tenant_a, team, ready)
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    client = api(issue_key(scopes=WRITER, by=team["marketer"].user))

    cancelled = client.post(f"/api/v1/campaigns/{campaign.pk}/cancel", "{}", HTTP_IDEMPOTENCY_KEY="stop-1")
    again = client.post(f"/api/v1/campaigns/{campaign.pk}/cancel", "{}", HTTP_IDEMPOTENCY_KEY="stop-1")

    assert (cancelled.status_code, again.status_code) == (200, 200), cancelled.content
    assert again["Idempotent-Replayed"] == "true"
    with tenant_context(tenant_a):
        states = set(
            Message.objects.filter(source_type="campaign", source_id=str(campaign.pk)).values_list(
                "state", flat=True
            )
        )
    assert states == {Message.State.CANCELLED}
    [event] = [e for e in audit_events(tenant=tenant_a) if e.action == "campaign.cancel"]
    assert event.details["messages_cancelled"] == 3


def test_withdraw_takes_a_submitted_campaign_back_to_draft(api, issue_key, tenant_a, team, ready):
    client = api(issue_key(scopes=WRITER, by=team["marketer"].user))
    campaign_id = _created(client, tenant_a, ready)
    assert_problem(client.post(f"/api/v1/campaigns/{campaign_id}/withdraw", "{}"), 409, "campaign_state")
    client.post(f"/api/v1/campaigns/{campaign_id}/submit", "{}")

    withdrawn = client.post(f"/api/v1/campaigns/{campaign_id}/withdraw", json.dumps({"comment": "Typo"}))

    assert withdrawn.json()["status"] == "draft", withdrawn.content
    actions = [e.action for e in audit_events(tenant=tenant_a) if e.actor_type == "api_key"]
    assert [a for a in actions if a.startswith("campaign.")] == [
        "campaign.create",
        "campaign.submit",
        "campaign.withdraw",
    ]

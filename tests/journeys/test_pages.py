"""Journey pages: who may open what, another tenant's journey is a 404, the builder saves through the
definition check with problems shown at their step, the review keeps four eyes, the step report goes
through the disclosure policy, and the contact page's journey history is masked and audited."""

from __future__ import annotations

import json
import uuid

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from journeys import library
from journeys.models import Journey, JourneyVersion, Position
from journeys.services import engine, enrolment
from journeys.services import journeys as journey_services
from tests.conftest import sign_in

from .conftest import SYSTEM, WAIT_ONLY, active_journey, definition, patient

pytestmark = pytest.mark.django_db


def _form(body: dict, name: str = "Appointment follow-up") -> dict:
    entry = body["entry"]
    return {
        "name": name,
        "entry_kind": entry["kind"],
        "entry_event": entry.get("event", ""),
        "entry_field": "",
        "entry_offset_days": "0",
        "start": body["start"],
        "goal_event": "",
        "cycle_cap": "3",
        "sender_domain": body.get("sender_domain_id", ""),
        "sender_name": body.get("sender_name", ""),
        "steps": json.dumps(body["steps"]),
        "layout": json.dumps({"welcome": [10, 20]}),
    }


@pytest.mark.parametrize(
    ("role", "name", "status"),
    [
        (Role.MARKETER, "journeys:journey_list", 200),
        (Role.COMPLIANCE_OFFICER, "journeys:journey_list", 200),
        (Role.TENANT_ADMIN, "journeys:journey_list", 200),
        (Role.CLINICAL_REVIEWER, "journeys:journey_list", 403),
        (Role.MARKETER, "journeys:journey_new", 200),
        (Role.COMPLIANCE_OFFICER, "journeys:journey_new", 403),
        (Role.TENANT_ADMIN, "journeys:journey_new", 403),
    ],
)
def test_role_matrix(member_client, role, name, status):
    assert member_client(role).get(reverse(name)).status_code == status


@pytest.mark.parametrize("role", [Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER])
def test_roles_on_one_journey(member_client, tenant_a, role):
    journey = active_journey(tenant_a)
    client = member_client(role)
    detail = client.get(reverse("journeys:journey_detail", args=[journey.pk]))
    assert detail.status_code == (403 if role == Role.CLINICAL_REVIEWER else 200)
    # Only an editor pauses; only an approver reviews.
    paused = client.post(reverse("journeys:journey_pause", args=[journey.pk]))
    assert paused.status_code == (302 if role == Role.MARKETER else 403)
    reviewed = client.post(reverse("journeys:journey_review", args=[journey.pk]), {"decision": "approve"})
    assert reviewed.status_code == (302 if role == Role.COMPLIANCE_OFFICER else 403)


def test_foreign_and_missing_journeys_answer_404(member_client, tenant_a, tenant_b):
    foreign = active_journey(tenant_b)
    client = member_client(Role.MARKETER)
    for name in ("journey_detail", "journey_edit"):
        assert client.get(reverse(f"journeys:{name}", args=[foreign.pk])).status_code == 404, name
    assert client.get(reverse("journeys:journey_detail", args=[uuid.uuid4()])).status_code == 404
    for name in ("journey_submit", "journey_activate", "journey_pause", "journey_resume", "journey_archive"):
        assert client.post(reverse(f"journeys:{name}", args=[foreign.pk])).status_code == 404, name
    officer = member_client(Role.COMPLIANCE_OFFICER)
    assert officer.post(reverse("journeys:journey_review", args=[foreign.pk])).status_code == 404
    with tenant_context(tenant_b):
        assert Journey.objects.get(pk=foreign.pk).status == Journey.Status.ACTIVE


def test_builder_saves_the_definition_and_shows_problems_at_their_step(client, tenant_a, people, ready):
    sign_in(client, people["marketer"].user, tenant=tenant_a)
    body = definition(template_id=ready["template"].pk, sender_domain_id=ready["sender_domain"].pk)
    broken = json.loads(json.dumps(body))
    broken["steps"]["followup"]["template_id"] = ""
    broken["steps"]["check"]["no"] = "nowhere"

    refused = client.post(reverse("journeys:journey_new"), _form(broken))

    assert refused.status_code == 400
    page = refused.content.decode()
    assert 'data-step="followup"' in page
    assert "Choose the template to send." in page
    assert 'data-step="check"' in page
    assert "Connect this to an existing step." in page
    with tenant_context(tenant_a):
        assert not Journey.objects.exists()

    saved = client.post(reverse("journeys:journey_new"), _form(body))

    assert saved.status_code == 302
    with tenant_context(tenant_a):
        journey = Journey.objects.get()
        version = journey.versions.get()
    assert version.definition["steps"]["welcome"]["template_version_id"]
    assert version.definition["layout"] == {"welcome": [10, 20]}
    assert version.status == JourneyVersion.Status.DRAFT
    # The edit page shows the same definition as a step list (the no-JavaScript fallback).
    edit = client.get(reverse("journeys:journey_edit", args=[journey.pk])).content.decode()
    assert 'id="step-followup"' in edit
    assert "template_version_id" not in edit


def test_dry_run_from_the_builder_saves_nothing(client, tenant_a, people, ready):
    sign_in(client, people["marketer"].user, tenant=tenant_a)
    body = definition(template_id=ready["template"].pk, sender_domain_id=ready["sender_domain"].pk)
    form = _form(body) | {"action": "dry_run"}

    response = client.post(reverse("journeys:journey_new"), form)

    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="dry-run"' in page
    assert "Sample 1" in page
    assert "completes the journey" in page
    with tenant_context(tenant_a):
        assert not Journey.objects.exists()


def test_review_activation_pause_resume_archive_through_the_pages(client, tenant_a, people, ready):
    marketer, compliance = people["marketer"], people["compliance"]
    body = definition(template_id=ready["template"].pk, sender_domain_id=ready["sender_domain"].pk)
    journey = journey_services.journey_create(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, name="Follow-up", definition=body
    )
    url = lambda name: reverse(f"journeys:journey_{name}", args=[journey.pk])  # noqa: E731

    sign_in(client, marketer.user, tenant=tenant_a)
    client.post(url("activate"))  # not approved: refused
    with tenant_context(tenant_a):
        assert Journey.objects.get(pk=journey.pk).status == Journey.Status.DRAFT
    client.post(url("submit"))
    sign_in(client, compliance.user, tenant=tenant_a)
    page = client.get(url("detail")).content.decode()
    assert "Your review" in page
    client.post(url("review"), {"decision": "approve", "comment": "Fine"})
    sign_in(client, marketer.user, tenant=tenant_a)
    client.post(url("activate"))
    with tenant_context(tenant_a):
        journey.refresh_from_db()
        version = journey.versions.get()
    assert (journey.status, version.status, version.approved_by_id) == (
        "active",
        "approved",
        compliance.user.pk,
    )

    client.post(url("pause"))
    with tenant_context(tenant_a):
        assert Journey.objects.get(pk=journey.pk).status == Journey.Status.PAUSED
    client.post(url("resume"))
    with tenant_context(tenant_a):
        assert Journey.objects.get(pk=journey.pk).status == Journey.Status.ACTIVE
    contact = patient(tenant_a)
    enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)
    client.post(url("archive"))
    with tenant_context(tenant_a):
        assert Journey.objects.get(pk=journey.pk).status == Journey.Status.ARCHIVED
        assert Position.objects.get(journey=journey).exit_reason == "archived"


def test_the_author_cannot_approve_their_own_version(client, tenant_a, people):
    """Four eyes as for campaigns: a compliance officer who submitted a version (or wrote it) is not
    the second person, and the page says so."""
    officer = people["compliance"]
    body = {"entry": {"kind": "manual"}, "start": "wait", "steps": json.loads(json.dumps(WAIT_ONLY))}
    journey = journey_services.journey_create(
        tenant=tenant_a, actor=people["marketer"].actor, role=Role.MARKETER, name="Recall", definition=body
    )
    with tenant_context(tenant_a):
        version = journey.versions.get()
        JourneyVersion.objects.filter(pk=version.pk).update(
            status=JourneyVersion.Status.IN_REVIEW, submitted_by=officer.user
        )
    sign_in(client, officer.user, tenant=tenant_a)

    response = client.post(reverse("journeys:journey_review", args=[journey.pk]), {"decision": "approve"})

    assert response.status_code == 302
    with tenant_context(tenant_a):
        assert JourneyVersion.objects.get(pk=version.pk).status == JourneyVersion.Status.IN_REVIEW
    page = client.get(reverse("journeys:journey_detail", args=[journey.pk])).content.decode()
    assert "message error" in page


def test_step_report_hides_small_counts(member_client, tenant_a):
    journey = active_journey(tenant_a)
    for _ in range(2):
        enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=patient(tenant_a))
    engine.positions_advance(tenant=tenant_a)

    page = member_client(Role.MARKETER).get(reverse("journeys:journey_detail", args=[journey.pk]))

    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-testid="step-report"' in text
    # Two contacts wait at the first step: the policy shows "fewer than k", never 2.
    row = text.split('data-step="wait"', 1)[1].split("</tr>", 1)[0]
    assert "fewer than" in row
    assert "<td>2</td>" not in row


def test_journey_templates_ship_valid_and_open_in_the_builder(member_client):
    shipped = library.journey_templates()
    assert {t.key for t in shipped} == {
        "appointment_reminders",
        "post_visit_follow_up",
        "annual_wellness_recall",
        "new_patient_welcome",
        "lapsed_reengagement",
        "unopened_reminder",
    }
    for found in shipped:
        assert library.missing_choices(found.definition) == [], found.key
    client = member_client(Role.MARKETER)
    page = client.get(reverse("journeys:journey_new") + "?template=post_visit_follow_up").content.decode()
    assert "Post-visit survey and follow-up" in page
    assert 'id="step-survey"' in page
    assert client.get(reverse("journeys:journey_new") + "?template=nope").status_code == 404


def test_contact_page_history_is_masked_for_health_journeys_and_audited(member_client, tenant_a):
    plain = active_journey(tenant_a, name="Newsletter welcome")
    health = active_journey(tenant_a, name="Diabetes education")
    with tenant_context(tenant_a):
        JourneyVersion.objects.filter(pk=health.live_version_id).update(uses_phi=True)
        health.refresh_from_db()
    contact = patient(tenant_a)
    for journey in (plain, health):
        enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)
    url = reverse("contacts:contact_detail", args=[contact.pk])

    masked = member_client(Role.MARKETER).get(url).content.decode()
    unmasked = member_client(Role.COMPLIANCE_OFFICER).get(url).content.decode()

    assert "Newsletter welcome" in masked
    assert "Diabetes education" not in masked
    assert "masked for your role" in masked
    assert "Newsletter welcome" in unmasked
    assert "Diabetes education" in unmasked
    with tenant_context(tenant_a):
        reads = AuditEvent.objects.filter(action="phi.read", target_type="journeys.position")
        purposes = sorted(e.details["purpose"] for e in reads)
        assert purposes == ["contact journey history", "masked journey history"]
        assert all(contact.pk in e.contact_ids for e in reads)


def test_editing_a_live_journey_makes_the_next_version_and_renames_with_it(client, tenant_a, people):
    journey = active_journey(tenant_a, name="Recall")
    sign_in(client, people["marketer"].user, tenant=tenant_a)
    body = {"entry": {"kind": "manual"}, "start": "wait", "steps": json.loads(json.dumps(WAIT_ONLY))}
    body["steps"]["wait"]["seconds"] = 7200
    url = reverse("journeys:journey_edit", args=[journey.pk])

    refused = client.post(url, _form({**body, "start": "nowhere"}, name="Recall 2026"))
    saved = client.post(url, _form(body, name="Recall 2026"))

    assert refused.status_code == 400
    assert saved.status_code == 302
    with tenant_context(tenant_a):
        journey.refresh_from_db()
        versions = list(journey.versions.order_by("number"))
        renames = AuditEvent.objects.filter(action="journeys.rename", target_id=str(journey.pk))
        assert renames.count() == 1  # the refused save renamed nothing
    assert journey.name == "Recall 2026"
    assert [(v.number, v.status) for v in versions] == [(1, "approved"), (2, "draft")]
    assert journey.live_version_id == versions[0].pk  # contacts keep running on version 1
    assert versions[1].definition["steps"]["wait"]["seconds"] == 7200


@pytest.mark.parametrize("policy", [True, False])
def test_goal_conversions_by_day_go_through_the_disclosure_policy(
    member_client, tenant_a, api, issue_key, settings, policy
):
    settings.DISCLOSURE_ENABLED = policy
    journey = active_journey(tenant_a)
    with tenant_context(tenant_a):
        version = journey.live_version
        version.definition = {**version.definition, "goal": {"event": "appointment.kept"}}
        JourneyVersion.objects.filter(pk=version.pk).update(definition=version.definition)
    client = api(issue_key(scopes=["events:write"]))
    for index in range(3):
        contact = patient(tenant_a)
        enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)
        body = {"contact_id": str(contact.pk), "type": "appointment.kept", "id": f"kept-{index}"}
        assert client.post("/api/v1/events", body).status_code == 202

    page = member_client(Role.MARKETER).get(reverse("journeys:journey_detail", args=[journey.pk]))

    table = page.content.decode().split('data-testid="conversions"', 1)[1].split("</table>", 1)[0]
    if policy:
        assert "fewer than" in table
        assert "<td>3</td>" not in table
    else:
        assert "<td>3</td>" in table

"""The journeys API: scopes, tenant isolation, enrol/remove, a contact's positions (audited), step
counts through the disclosure policy, and named events on the events route."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from healthmail.tenants.context import tenant_context
from journeys.models import Journey, Position
from tests.api.conftest import assert_problem

from .conftest import active_journey, patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def journey(tenant_a):
    return active_journey(tenant_a)


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/api/v1/journeys", "journeys:read"),
        ("POST", "/api/v1/journeys", "journeys:write"),
        ("GET", "/api/v1/journeys/{journey}", "journeys:read"),
        ("POST", "/api/v1/journeys/{journey}/enrolments", "journeys:write"),
        ("POST", "/api/v1/journeys/{journey}/removals", "journeys:write"),
    ],
)
def test_each_route_refuses_a_key_without_its_scope(api, issue_key, journey, method, path, scope):
    others = ["contacts:read", "events:write", "journeys:read", "journeys:write"]
    client = api(issue_key(scopes=[s for s in others if s != scope]))

    response = client.generic(method, path.format(journey=journey.pk), "{}")

    assert_problem(response, 403)


def test_the_list_shows_only_the_callers_journeys(api, issue_key, tenant_a, tenant_b, journey):
    foreign = active_journey(tenant_b, name="Foreign recall")

    body = api(issue_key(scopes=["journeys:read"])).get("/api/v1/journeys").json()

    ids = [row["id"] for row in body["results"]]
    assert ids == [str(journey.pk)]
    assert str(foreign.pk) not in ids


def test_enrol_remove_and_read_a_contacts_positions(api, issue_key, tenant_a, journey):
    contact = patient(tenant_a, opt_in=False)
    client = api(issue_key(scopes=["journeys:read", "journeys:write"]))

    enrolled = client.post(f"/api/v1/journeys/{journey.pk}/enrolments", {"contact_id": str(contact.pk)})
    again = client.post(f"/api/v1/journeys/{journey.pk}/enrolments", {"contact_id": str(contact.pk)})

    assert enrolled.status_code == 201
    assert again.json()["id"] == enrolled.json()["id"]  # one open position per contact and journey
    positions = client.get(f"/api/v1/contacts/{contact.pk}/journeys").json()
    assert [(p["journey_id"], p["state"]) for p in positions] == [(str(journey.pk), "waiting")]
    with tenant_context(tenant_a):
        assert (
            AuditEvent.objects.filter(action="journeys.positions_read", target_id=str(contact.pk)).count()
            == 1
        )
    removed = client.post(f"/api/v1/journeys/{journey.pk}/removals", {"contact_id": str(contact.pk)})
    assert removed.json() == {"removed": 1}
    with tenant_context(tenant_a):
        assert Position.objects.get(journey=journey, contact=contact).exit_reason == "removed"
        assert AuditEvent.objects.filter(action="journeys.remove", target_id=str(journey.pk)).count() == 1


def test_a_foreign_contact_cannot_be_enrolled(api, issue_key, tenant_b, journey):
    foreign_contact = patient(tenant_b, opt_in=False)

    response = api(issue_key(scopes=["journeys:write"])).post(
        f"/api/v1/journeys/{journey.pk}/enrolments", {"contact_id": str(foreign_contact.pk)}
    )

    assert_problem(response, 404)
    with tenant_context(tenant_b):
        assert not Position.objects.filter(contact=foreign_contact).exists()


def test_a_paused_journey_refuses_enrolment_with_a_clear_problem(api, issue_key, tenant_a, journey):
    from journeys.models import Journey

    with tenant_context(tenant_a):
        Journey.objects.filter(pk=journey.pk).update(status=Journey.Status.PAUSED)
    contact = patient(tenant_a, opt_in=False)

    response = api(issue_key(scopes=["journeys:write"])).post(
        f"/api/v1/journeys/{journey.pk}/enrolments", {"contact_id": str(contact.pk)}
    )

    body = assert_problem(response, 409)
    assert "active journey" in body["detail"]


def test_step_counts_below_k_are_masked_and_large_ones_shown(api, issue_key, tenant_a, journey):
    client = api(issue_key(scopes=["journeys:read", "journeys:write"]))
    for _ in range(3):
        client.post(
            f"/api/v1/journeys/{journey.pk}/enrolments",
            {"contact_id": str(patient(tenant_a, opt_in=False).pk)},
        )

    steps = client.get(f"/api/v1/journeys/{journey.pk}").json()["steps"]

    assert steps["entry"]["waiting"] == {"value": None, "display": "fewer than 11", "exact": False}


def test_step_counts_are_exact_without_the_policy(api, issue_key, tenant_a, journey, settings):
    settings.DISCLOSURE_ENABLED = False
    client = api(issue_key(scopes=["journeys:read", "journeys:write"]))
    for _ in range(3):
        client.post(
            f"/api/v1/journeys/{journey.pk}/enrolments",
            {"contact_id": str(patient(tenant_a, opt_in=False).pk)},
        )

    steps = client.get(f"/api/v1/journeys/{journey.pk}").json()["steps"]

    assert steps["entry"]["waiting"]["value"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "lab.ready"}, "id"),
        ({"type": "lab.ready", "id": "e1", "kind": "conversion"}, "non_field_errors"),
        ({"type": "Lab Ready!", "id": "e1"}, "type"),
        ({"type": "lab.ready", "id": "e1", "data": {"nested": {"a": 1}}}, "data"),
    ],
)
def test_named_events_with_bad_input_get_a_clear_problem(api, issue_key, tenant_a, body, field):
    contact = patient(tenant_a, opt_in=False)

    response = api(issue_key(scopes=["events:write"])).post(
        "/api/v1/events", {"contact_id": str(contact.pk), **body}
    )

    assert response.status_code in (400, 422)
    assert response["Content-Type"].startswith("application/problem+json")
    assert field in response.content.decode()


def test_create_a_draft_journey_with_a_checked_definition(api, issue_key, tenant_a):
    client = api(issue_key(scopes=["journeys:write"]))
    body = {
        "name": "Recall",
        "definition": {
            "entry": {"kind": "manual"},
            "start": "wait",
            "steps": {"wait": {"type": "wait", "seconds": 3600, "next": "done"}, "done": {"type": "exit"}},
        },
    }

    created = client.post("/api/v1/journeys", body)

    assert created.status_code == 201, created.content
    answer = created.json()
    assert (answer["name"], answer["status"], answer["version"], answer["version_status"]) == (
        "Recall",
        "draft",
        1,
        "draft",
    )
    with tenant_context(tenant_a):
        journey = Journey.objects.get(pk=answer["id"])
        assert journey.versions.get().definition["steps"]["wait"]["seconds"] == 3600
        assert AuditEvent.objects.filter(action="journeys.create", target_id=str(journey.pk)).exists()


def test_an_invalid_definition_answers_422_with_every_problem(api, issue_key, tenant_a):
    client = api(issue_key(scopes=["journeys:write"]))
    body = {
        "name": "Loop",
        "definition": {
            "entry": {"kind": "manual"},
            "start": "a",
            "steps": {"a": {"type": "send", "next": []}, "b": {"type": "teleport"}},
        },
    }

    refused = client.post("/api/v1/journeys", body)

    problem = assert_problem(refused, 422, "definition_invalid")
    wheres = {p["where"] for p in problem["problems"]}
    assert {"steps.a.template_id", "steps.a.purpose", "steps.a.next", "steps.b"} <= wheres
    with tenant_context(tenant_a):
        assert not Journey.objects.filter(name="Loop").exists()

"""A form submission reported to `POST /api/v1/events` (`kind: form_submission`, `label`: the form's
key) starts the active journeys of that form: for that contact only, not another form's journeys,
not another organization's, not a paused journey; a contact inside stays where it is."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from healthmail.tenants.context import tenant_context
from journeys import definition as spec
from journeys.models import Position
from journeys.services import journeys as journey_services

from .conftest import active_journey, patient

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_wakeups")]
INTAKE = {"kind": "form", "form": "intake-form"}


def _report(api, issue_key, contact, form: str):
    response = api(issue_key(scopes=["events:write"], tenant=contact.tenant)).post(
        "/api/v1/events", {"contact_id": str(contact.pk), "kind": "form_submission", "label": form}
    )
    assert response.status_code == 201, response.content


def _inside(tenant, journey) -> list:
    with tenant_context(tenant):
        return list(Position.objects.filter(journey=journey).values_list("contact_id", flat=True))


def test_a_form_submission_starts_the_journeys_of_that_form(api, issue_key, tenant_a, tenant_b):
    intake = active_journey(tenant_a, entry=INTAKE, name="Intake follow-up")
    survey = active_journey(tenant_a, entry={"kind": "form", "form": "survey"}, name="Survey thanks")
    foreign = active_journey(tenant_b, entry=INTAKE, name="Their intake")
    submitter, bystander = patient(tenant_a), patient(tenant_a)

    _report(api, issue_key, submitter, "intake-form")
    _report(api, issue_key, submitter, "intake-form")  # again while inside: the same position

    assert _inside(tenant_a, intake) == [submitter.pk]
    assert _inside(tenant_a, survey) == []
    assert _inside(tenant_b, foreign) == []
    assert bystander.pk not in _inside(tenant_a, intake)


def test_other_engagement_and_a_paused_journey_enter_nobody(api, issue_key, tenant_a, people):
    intake = active_journey(tenant_a, entry=INTAKE, name="Intake follow-up")
    contact = patient(tenant_a)
    response = api(issue_key(scopes=["events:write"])).post(
        "/api/v1/events", {"contact_id": str(contact.pk), "kind": "page_view", "label": "intake-form"}
    )
    assert response.status_code == 201
    marketer = people["marketer"]
    journey_services.journey_pause(tenant=tenant_a, actor=marketer.actor, role=marketer.role, journey=intake)
    _report(api, issue_key, contact, "intake-form")

    assert _inside(tenant_a, intake) == []


@pytest.mark.parametrize("form", [None, "", "Intake Form", "a" * 65])
def test_a_form_entry_names_the_forms_key(form):
    entry = {"kind": "form"} if form is None else {"kind": "form", "form": form}
    body = {"entry": entry, "start": "done", "steps": {"done": {"type": "exit"}}}

    assert [p.where for p in spec.problems_of(body)] == ["entry.form"]


def test_the_builder_form_takes_a_form_entry(member_client, tenant_a):
    from healthmail.accounts.roles import Role
    from journeys.models import Journey

    from .test_labels import _field_errors

    client = member_client(Role.MARKETER)
    form = {
        "name": "Intake follow-up",
        "entry_kind": "form",
        "start": "done",
        "cycle_cap": "3",
        "steps": json.dumps({"done": {"type": "exit"}}),
    }

    refused = client.post(reverse("journeys:journey_new"), form)
    assert refused.status_code == 400
    assert _field_errors(refused.content.decode(), "entry_form") == [
        "Name the form whose submission starts the journey: its key, as your systems report it "
        "(like intake-form)."
    ]

    saved = client.post(reverse("journeys:journey_new"), form | {"entry_form": "intake-form"})
    assert saved.status_code == 302
    with tenant_context(tenant_a):
        entry = Journey.objects.get(name="Intake follow-up").versions.get().definition["entry"]
    assert entry == INTAKE

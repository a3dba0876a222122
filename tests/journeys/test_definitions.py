"""Definitions: every problem named where it is, loops without a wait refused at save, a new version on
edit of a running journey (contacts inside stay on theirs), and four eyes on approval."""

from __future__ import annotations

import pytest

from healthmail.errors import Conflict, PermissionRefused
from healthmail.tenants.context import tenant_context
from journeys import definition as spec
from journeys.models import JourneyVersion, Position
from journeys.services import engine
from journeys.services import journeys as journey_services

from .conftest import WAIT_ONLY, active_journey, patient

pytestmark = pytest.mark.django_db


def _body(steps, start="a", entry=None):
    return {"entry": entry or {"kind": "manual"}, "start": start, "steps": steps}


def test_a_loop_without_a_wait_is_refused_and_named():
    steps = {
        "a": {"type": "update", "add_tag": "x", "next": "b"},
        "b": {"type": "branch", "condition": {"tag": "x"}, "yes": "a", "no": "c"},
        "c": {"type": "exit"},
    }

    with pytest.raises(spec.DefinitionInvalid) as refused:
        spec.definition_check(_body(steps))

    (problem,) = refused.value.extra["problems"]
    assert "a → b → a" in problem["message"]


def test_the_same_loop_through_a_wait_is_accepted():
    steps = {
        "a": {"type": "update", "add_tag": "x", "next": "w"},
        "w": {"type": "wait", "seconds": 3600, "next": "b"},
        "b": {"type": "branch", "condition": {"tag": "x"}, "yes": "a", "no": "c"},
        "c": {"type": "exit"},
    }

    assert spec.definition_check(_body(steps))["steps"] == steps


@pytest.mark.parametrize(
    ("steps", "where"),
    [
        ({"a": {"type": "wait", "seconds": 5, "next": "b"}, "b": {"type": "exit"}}, "steps.a.seconds"),
        ({"a": {"type": "wait", "seconds": 3600, "next": "nowhere"}}, "steps.a.next"),
        ({"a": {"type": "teleport"}}, "steps.a"),
        ({"a": {"type": "exit"}, "b": {"type": "exit"}}, "steps"),  # b is unreachable
        ({"a": {"type": "send", "purpose": "gossip", "next": "a"}}, "steps.a.template_id"),
        (
            {
                "a": {
                    "type": "branch",
                    "condition": {"field": "clinical", "equals": "x"},
                    "yes": "a",
                    "no": "a",
                }
            },
            "steps.a.condition",
        ),
    ],
)
def test_each_problem_is_reported_where_it_is(steps, where):
    problems = spec.problems_of(_body(steps))

    assert where in [p.where for p in problems]


def test_an_event_entry_names_its_event():
    problems = spec.problems_of(_body({"a": {"type": "exit"}}, entry={"kind": "event"}))

    assert [p.where for p in problems] == ["entry.event"]


def test_an_edit_of_a_running_journey_is_a_new_version_and_contacts_stay_on_theirs(tenant_a, people):
    journey = active_journey(tenant_a)
    contact = patient(tenant_a, opt_in=False)
    from journeys.services.enrolment import journey_enrol
    from tests.journeys.conftest import SYSTEM

    journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)
    engine.positions_advance(tenant=tenant_a)
    marketer = people["marketer"]
    longer = {**WAIT_ONLY, "wait": {"type": "wait", "seconds": 7200, "next": "done"}}

    version = journey_services.journey_edit(
        tenant=tenant_a,
        actor=marketer.actor,
        role=marketer.role,
        journey=journey,
        definition={"entry": {"kind": "manual"}, "start": "wait", "steps": longer},
    )

    assert (version.number, version.status) == (2, JourneyVersion.Status.DRAFT)
    with tenant_context(tenant_a):
        journey.refresh_from_db()
        assert journey.live_version.number == 1  # still live until v2 is approved and activated
        assert Position.objects.get(contact=contact).version.number == 1


def test_nobody_approves_a_version_they_submitted(tenant_a, people):
    marketer = people["marketer"]
    journey = journey_services.journey_create(
        tenant=tenant_a,
        actor=marketer.actor,
        role=marketer.role,
        name="Recall",
        definition={"entry": {"kind": "manual"}, "start": "wait", "steps": WAIT_ONLY},
    )
    with tenant_context(tenant_a):
        version = journey.versions.get()
    journey_services.journey_submit(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, version=version
    )

    with pytest.raises(PermissionRefused):
        journey_services.journey_approve(
            tenant=tenant_a, actor=marketer.actor, role=marketer.role, version=version
        )
    # A compliance officer who submitted it may not approve it either.
    compliance = people["compliance"]
    with tenant_context(tenant_a):
        JourneyVersion.objects.filter(pk=version.pk).update(submitted_by=compliance.user)
    version.submitted_by_id = compliance.user.pk
    with pytest.raises(PermissionRefused):
        journey_services.journey_approve(
            tenant=tenant_a, actor=compliance.actor, role=compliance.role, version=version
        )


def test_an_unapproved_version_cannot_be_activated(tenant_a, people):
    marketer = people["marketer"]
    journey = journey_services.journey_create(
        tenant=tenant_a,
        actor=marketer.actor,
        role=marketer.role,
        name="Recall",
        definition={"entry": {"kind": "manual"}, "start": "wait", "steps": WAIT_ONLY},
    )
    with tenant_context(tenant_a):
        version = journey.versions.get()

    with pytest.raises(Conflict):
        journey_services.journey_activate(
            tenant=tenant_a, actor=marketer.actor, role=marketer.role, journey=journey, version=version
        )


def test_a_send_step_needs_a_verified_sender_domain(tenant_a, people):
    from tests.campaigns.conftest import template

    marketer = people["marketer"]
    template_obj = template(tenant_a, marketer.actor)
    steps = {
        "a": {"type": "send", "template_id": str(template_obj.pk), "purpose": "treatment", "next": "b"},
        "b": {"type": "exit"},
    }

    with pytest.raises(spec.DefinitionInvalid) as refused:
        journey_services.journey_create(
            tenant=tenant_a, actor=marketer.actor, role=marketer.role, name="Notice", definition=_body(steps)
        )

    assert refused.value.extra["problems"][0]["where"] == "sender_domain_id"

"""Versions and triggers: a new version takes contacts at safe steps only; a consent change starts
the journeys it triggers; opens wake waits and start engagement journeys."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from contacts.tagging import tag_token
from delivery.models import Message
from healthmail.tenants.context import tenant_context
from journeys import definition as spec
from journeys.models import Position
from journeys.services import engine, enrolment

from .conftest import SYSTEM, activated, definition, patient
from .steps_support import EXIT, enrol_and_run, journey_of, position_of, tags

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_wakeups")]


def test_a_new_version_takes_contacts_at_safe_steps_and_leaves_the_rest(tenant_a, people):
    from journeys.services import journeys as journey_services

    first = {
        "a": {"type": "wait", "seconds": 3600, "next": "b"},
        "b": {"type": "wait_event", "event": "visit.done", "timeout_seconds": 3600, "next": "done",
              "timeout_next": "done"},
        **EXIT,
    }  # fmt: skip
    journey = journey_of(tenant_a, people, first, "a")
    resting, further, fresh = (patient(tenant_a, opt_in=False) for _ in range(3))
    now = timezone.now() + datetime.timedelta(seconds=1)
    enrol_and_run(tenant_a, journey, [resting, further], now=now)
    engine.positions_advance(
        tenant=tenant_a,
        now=now + datetime.timedelta(hours=2),
        ids=[position_of(tenant_a, journey, further).pk],
    )
    enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=fresh)
    old_version = journey.live_version_id
    second = {
        "entry": {"kind": "manual"},
        "start": "a",
        "steps": {
            "a": {"type": "wait", "seconds": 7200, "next": "x"},
            "x": {"type": "update", "add_tag": "second", "next": "done"},
            **EXIT,
        },
    }
    marketer, compliance = people["marketer"], people["compliance"]
    version = journey_services.journey_edit(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, journey=journey, definition=second
    )
    journey_services.journey_submit(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, version=version
    )
    journey_services.journey_approve(
        tenant=tenant_a, actor=compliance.actor, role=compliance.role, version=version
    )
    journey_services.journey_activate(
        tenant=tenant_a,
        actor=marketer.actor,
        role=marketer.role,
        journey=journey,
        version=version,
        move="safe",
    )

    versions = {c: position_of(tenant_a, journey, c).version_id for c in (resting, further, fresh)}
    assert versions == {resting: version.pk, further: old_version, fresh: version.pk}
    assert position_of(tenant_a, journey, resting).step == "a"  # its wait's end is kept
    later = now + datetime.timedelta(hours=3)
    while engine.positions_advance(tenant=tenant_a, now=later).advanced:
        pass
    assert tags(tenant_a, resting) == [tag_token(tenant_a, "second")]  # it went on the new way
    assert tags(tenant_a, further) == []
    assert position_of(tenant_a, journey, further).exit_reason == "completed"  # the old way


def test_a_consent_change_starts_the_journeys_it_triggers(tenant_a, people):
    from consent import services as consent
    from tests.delivery.engine_support import evidence

    steps = {"x": {"type": "notify", "role": "marketer", "subject": "Opted out", "next": "done"}, **EXIT}
    body = {
        "entry": {"kind": "consent", "topic": "marketing_newsletters", "change": "revoked"},
        "start": "x",
        "steps": steps,
    }
    journey = activated(tenant_a, people, body, name="Opt-out follow-up")
    leaving, staying = patient(tenant_a), patient(tenant_a, opt_in=False)
    topic = consent.topic_by_key(tenant=tenant_a, key="marketing_newsletters")

    consent.consent_revoke(tenant=tenant_a, contact=leaving, topic=topic, evidence=evidence())
    consent.consent_grant(tenant=tenant_a, contact=staying, topic=topic, evidence=evidence())

    with tenant_context(tenant_a):
        inside = set(Position.objects.filter(journey=journey).values_list("contact_id", flat=True))
    assert inside == {leaving.pk}


def test_a_consent_trigger_names_a_topic_of_the_organization(tenant_a, people):
    body = {
        "entry": {"kind": "consent", "topic": "no_such_topic", "change": "granted"},
        "start": "done",
        "steps": dict(EXIT),
    }
    with pytest.raises(spec.DefinitionInvalid) as refused:
        activated(tenant_a, people, body)
    assert refused.value.extra["problems"][0]["where"] == "entry.topic"


def test_opens_wake_the_journeys_wait_and_start_engagement_journeys(tenant_a, people, ready):
    from delivery.tracking.services import engagement_record
    from delivery.tracking.tokens import OPEN, TrackingToken

    send = {
        "type": "send", "template_id": str(ready["template"].pk), "purpose": "marketing",
        "topic": "marketing_newsletters", "next": "opened",
    }  # fmt: skip
    steps = {
        "mail": send,
        "opened": {"type": "wait_event", "event": "email.opened", "timeout_seconds": 3 * 86400,
                   "next": "thanks", "timeout_next": "nudge"},
        "thanks": {"type": "update", "add_tag": "opened", "next": "done"},
        "nudge": {"type": "update", "add_tag": "not_opened", "next": "done"},
        **EXIT,
    }  # fmt: skip
    body = definition(
        template_id=ready["template"].pk,
        sender_domain_id=ready["sender_domain"].pk,
        entry={"kind": "manual"},
        start="mail",
        steps=steps,
    )
    journey = activated(tenant_a, people, body)
    followers = journey_of(
        tenant_a, people, {"x": {"type": "wait", "seconds": 3600, "next": "done"}, **EXIT}, "x",
        name="Engaged", entry={"kind": "engagement", "action": "opened"},
    )  # fmt: skip
    reader, ignorer = patient(tenant_a), patient(tenant_a)
    enrol_and_run(tenant_a, journey, [reader, ignorer])
    with tenant_context(tenant_a):
        message = Message.objects.get(contact=reader, source_type="journey")
        Message.objects.filter(pk=message.pk).update(
            state=Message.State.DELIVERED_TLS, finished_at=timezone.now() - datetime.timedelta(minutes=5)
        )
        message.refresh_from_db()

    engagement_record(
        token=TrackingToken(OPEN, tenant_a.pk, message.pk),
        user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126 Safari/537.36",
        ip="203.0.113.9",
    )
    while engine.positions_advance(
        tenant=tenant_a, now=timezone.now() + datetime.timedelta(seconds=5)
    ).advanced:
        pass
    assert tags(tenant_a, reader) == [tag_token(tenant_a, "opened")]
    assert tags(tenant_a, ignorer) == []  # still waiting: nobody else was woken
    later = timezone.now() + datetime.timedelta(days=3, minutes=1)
    while engine.positions_advance(tenant=tenant_a, now=later).advanced:
        pass
    assert tags(tenant_a, ignorer) == [tag_token(tenant_a, "not_opened")]  # did not open within 3 days
    assert position_of(tenant_a, followers, reader) is not None  # the open started this journey
    assert position_of(tenant_a, followers, ignorer) is None


@pytest.mark.parametrize(("move", "moves"), [(None, False), ("stay", False), ("safe", True)])
def test_the_marketer_chooses_on_the_page_whether_contacts_inside_move(client, tenant_a, people, move, moves):
    from django.urls import reverse

    from journeys.services import journeys as journey_services
    from tests.conftest import sign_in

    steps = {"a": {"type": "wait", "seconds": 3600, "next": "done"}, **EXIT}
    journey = journey_of(tenant_a, people, steps, "a")
    resting = patient(tenant_a, opt_in=False)
    enrol_and_run(tenant_a, journey, [resting])
    old_version = journey.live_version_id
    marketer, compliance = people["marketer"], people["compliance"]
    second = {
        "entry": {"kind": "manual"},
        "start": "a",
        "steps": {**steps, "a": {**steps["a"], "seconds": 7200}},
    }
    version = journey_services.journey_edit(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, journey=journey, definition=second
    )
    journey_services.journey_submit(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, version=version
    )
    journey_services.journey_approve(
        tenant=tenant_a, actor=compliance.actor, role=compliance.role, version=version
    )
    sign_in(client, marketer.user, tenant=tenant_a)
    detail = client.get(reverse("journeys:journey_detail", args=[journey.pk])).content.decode()
    assert 'name="move" value="safe"' in detail  # the choice is offered

    client.post(reverse("journeys:journey_activate", args=[journey.pk]), {"move": move} if move else {})

    with tenant_context(tenant_a):
        journey.refresh_from_db()
    assert journey.live_version_id == version.pk
    assert position_of(tenant_a, journey, resting).version_id == (version.pk if moves else old_version)


def test_an_unknown_move_choice_is_refused_with_a_message(client, tenant_a, people):
    from django.urls import reverse

    from journeys.services import journeys as journey_services
    from tests.conftest import sign_in

    steps = {"a": {"type": "wait", "seconds": 3600, "next": "done"}, **EXIT}
    journey = journey_of(tenant_a, people, steps, "a")
    marketer, compliance = people["marketer"], people["compliance"]
    version = journey_services.journey_edit(
        tenant=tenant_a,
        actor=marketer.actor,
        role=marketer.role,
        journey=journey,
        definition={"entry": {"kind": "manual"}, "start": "a", "steps": steps, "cycle_cap": 2},
    )
    journey_services.journey_submit(
        tenant=tenant_a, actor=marketer.actor, role=marketer.role, version=version
    )
    journey_services.journey_approve(
        tenant=tenant_a, actor=compliance.actor, role=compliance.role, version=version
    )
    sign_in(client, marketer.user, tenant=tenant_a)

    response = client.post(
        reverse("journeys:journey_activate", args=[journey.pk]), {"move": "sideways"}, follow=True
    )

    assert response.status_code == 200
    assert "either stay on their version or move at a safe step" in response.content.decode()
    with tenant_context(tenant_a):
        journey.refresh_from_db()
    assert journey.live_version_id != version.pk

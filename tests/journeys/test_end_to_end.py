"""A journey end to end: events posted through the API start and wake contacts, the engine walks them,
the delivery engine delivers to the loopback SMTP receivers — and a contact whose consent is revoked
mid-journey receives nothing more."""

from __future__ import annotations

import datetime
import email
import email.policy

import pytest
from django.utils import timezone

from consent import services as consent
from delivery.engine.worker import drain
from delivery.models import Message, Stream
from healthmail.tenants.context import tenant_context
from journeys.models import Position, StepLog
from journeys.services import engine
from tests.delivery.engine_support import dependencies, evidence

from .conftest import activated, definition, patient

pytestmark = pytest.mark.django_db


def _post_event(client, contact, event_type: str, event_id: str):
    return client.post(
        "/api/v1/events",
        {"contact_id": str(contact.pk), "type": event_type, "id": event_id, "data": {"slot": "9:00"}},
    )


def _received_by(kit, address: str) -> list:
    return [m for m in kit["good"].messages if m.rcpt_tos == [address]]


def _subject(received) -> str:
    return email.message_from_bytes(received.content, policy=email.policy.SMTP)["Subject"]


def test_events_move_contacts_to_the_mailbox_and_a_revocation_stops_the_next_send(
    tenant_a, people, ready, api, issue_key, kit, transport
):
    journey = activated(
        tenant_a,
        people,
        definition(template_id=ready["template"].pk, sender_domain_id=ready["sender_domain"].pk),
    )
    stays, revokes = patient(tenant_a), patient(tenant_a)
    client = api(issue_key(scopes=["events:write"]))
    deps = dependencies(kit, transport)

    for index, contact in enumerate((stays, revokes)):
        assert _post_event(client, contact, "appointment.booked", f"booking-{index}").status_code == 202
    assert engine.positions_advance(tenant=tenant_a).sent == 2
    drain(tenant_id=tenant_a.pk, stream=Stream.MARKETING, deps=deps)
    assert len(_received_by(kit, stays.email)) == 1
    assert len(_received_by(kit, revokes.email)) == 1
    assert _subject(_received_by(kit, stays.email)[0]) == "Flu shots are here"

    # Mid-journey, one patient withdraws the opt-in; then both visits happen.
    topic = consent.topic_by_key(tenant=tenant_a, key="marketing_newsletters")
    consent.consent_revoke(tenant=tenant_a, contact=revokes, topic=topic, evidence=evidence())
    for index, contact in enumerate((stays, revokes)):
        assert _post_event(client, contact, "visit.done", f"visit-{index}").status_code == 202
    report = engine.positions_advance(tenant=tenant_a)
    assert (report.sent, report.refused) == (1, 1)
    drain(tenant_id=tenant_a.pk, stream=Stream.MARKETING, deps=deps)

    assert len(_received_by(kit, stays.email)) == 2  # the follow-up arrived
    assert len(_received_by(kit, revokes.email)) == 1  # nothing after the revocation
    with tenant_context(tenant_a):
        stopped = Position.objects.get(journey=journey, contact=revokes)
        assert (stopped.state, stopped.exit_reason) == ("exited", "send_refused:opt_in_revoked")
        assert Message.objects.filter(contact=revokes, source_type="journey").count() == 1
        finished = Position.objects.get(journey=journey, contact=stays)
        assert (finished.state, finished.exit_reason) == ("exited", "completed")
        assert (
            StepLog.objects.filter(position=stopped, outcome="refused", detail="opt_in_revoked").count() == 1
        )


def test_a_wait_for_an_event_times_out_along_its_own_path(tenant_a, people, ready, api, issue_key):
    journey = activated(
        tenant_a,
        people,
        definition(template_id=ready["template"].pk, sender_domain_id=ready["sender_domain"].pk),
    )
    contact = patient(tenant_a)
    assert (
        _post_event(api(issue_key(scopes=["events:write"])), contact, "appointment.booked", "b-1").status_code
        == 202
    )
    engine.positions_advance(tenant=tenant_a)

    assert (
        engine.positions_advance(tenant=tenant_a, now=timezone.now() + datetime.timedelta(hours=23)).advanced
        == 0
    )
    later = engine.positions_advance(
        tenant=tenant_a, now=timezone.now() + datetime.timedelta(days=1, minutes=1)
    )

    assert (later.advanced, later.sent) == (1, 0)
    with tenant_context(tenant_a):
        position = Position.objects.get(journey=journey, contact=contact)
    assert (position.state, position.step, position.exit_reason) == ("exited", "done", "completed")


def test_a_repeated_event_id_has_no_further_effect(tenant_a, people, ready, api, issue_key):
    journey = activated(
        tenant_a,
        people,
        definition(template_id=ready["template"].pk, sender_domain_id=ready["sender_domain"].pk),
    )
    contact = patient(tenant_a)
    client = api(issue_key(scopes=["events:write"]))
    assert _post_event(client, contact, "appointment.booked", "same-id").status_code == 202
    engine.positions_advance(tenant=tenant_a)
    with tenant_context(tenant_a):
        Position.objects.filter(journey=journey).update(state="exited", due_at=None, waiting_event="")

    again = _post_event(client, contact, "appointment.booked", "same-id")

    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    with tenant_context(tenant_a):
        assert not Position.objects.filter(journey=journey, state="waiting").exists()


def test_an_event_wakes_only_the_contact_it_names(tenant_a, people, ready, api, issue_key):
    journey = activated(
        tenant_a,
        people,
        definition(template_id=ready["template"].pk, sender_domain_id=ready["sender_domain"].pk),
    )
    named, other = patient(tenant_a), patient(tenant_a)
    client = api(issue_key(scopes=["events:write"]))
    for index, contact in enumerate((named, other)):
        _post_event(client, contact, "appointment.booked", f"b-{index}")
    engine.positions_advance(tenant=tenant_a)

    _post_event(client, named, "visit.done", "v-named")

    with tenant_context(tenant_a):
        woken = Position.objects.get(journey=journey, contact=named)
        asleep = Position.objects.get(journey=journey, contact=other)
    assert woken.event_arrived
    assert woken.due_at <= timezone.now()
    assert not asleep.event_arrived
    assert asleep.due_at > timezone.now() + datetime.timedelta(hours=23)
    assert engine.positions_advance(tenant=tenant_a).advanced == 1


def test_the_goal_event_ends_the_journey_as_converted(tenant_a, people, ready, api, issue_key):
    body = definition(template_id=ready["template"].pk, sender_domain_id=ready["sender_domain"].pk)
    body["goal"] = {"event": "appointment.kept"}
    journey = activated(tenant_a, people, body)
    contact = patient(tenant_a)
    client = api(issue_key(scopes=["events:write"]))
    _post_event(client, contact, "appointment.booked", "b-1")
    engine.positions_advance(tenant=tenant_a)

    _post_event(client, contact, "appointment.kept", "k-1")

    with tenant_context(tenant_a):
        position = Position.objects.get(journey=journey, contact=contact)
        assert (position.state, position.exit_reason) == ("exited", "goal")
        assert StepLog.objects.filter(position=position, outcome="converted").count() == 1

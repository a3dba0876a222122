"""Which queue wakes a position: one contact's event goes to the transactional workers (never behind a
backlog advance on the marketing queue), bulk entries stay on the marketing queue."""

from __future__ import annotations

import uuid

import pytest

from consent import services as consent
from delivery.tracking.events import named_event_report
from healthmail.tenants.context import tenant_context
from journeys import tasks
from journeys.models import Position
from tests.delivery.engine_support import evidence

from .conftest import SYSTEM, activated, active_journey, patient
from .steps_support import EXIT

pytestmark = pytest.mark.django_db

NOTIFY = {"x": {"type": "notify", "role": "marketer", "subject": "Seen", "next": "done"}, **EXIT}


@pytest.fixture
def queued(monkeypatch):
    """(queue, task name, position ids) of each wake-up enqueued, instead of sending it."""
    sent: list[tuple[str, str, list[str]]] = []
    monkeypatch.setattr(
        tasks, "enqueue", lambda task, **kwargs: sent.append((task.queue, task.name, kwargs["position_ids"]))
    )
    return sent


def test_a_named_event_wakes_its_contact_on_the_transactional_queue(tenant_a, queued):
    journey = active_journey(tenant_a, entry={"kind": "event", "event": "lab_result.ready"})
    contact = patient(tenant_a)

    named_event_report(
        tenant=tenant_a,
        actor=SYSTEM,
        contact=contact,
        event_type="lab_result.ready",
        event_id=uuid.uuid4().hex,
    )

    with tenant_context(tenant_a):
        position = Position.objects.get(journey=journey, contact=contact)
    assert queued == [("transactional", "journeys.tasks.journeys_event_advance", [str(position.pk)])]
    # The task advances exactly that position (the transactional worker runs this body).
    assert tasks.journeys_event_advance(tenant_id=str(tenant_a.pk), position_ids=[str(position.pk)]) == 1
    with tenant_context(tenant_a):
        position.refresh_from_db()
    assert (position.step, position.state) == ("wait", Position.State.WAITING)


def test_bulk_entries_stay_on_the_marketing_queue(tenant_a, people, queued):
    body = {"entry": {"kind": "consent", "topic": "marketing_newsletters", "change": "revoked"}}
    activated(tenant_a, people, {**body, "start": "x", "steps": NOTIFY}, name="Opt-out follow-up")
    contact = patient(tenant_a)
    topic = consent.topic_by_key(tenant=tenant_a, key="marketing_newsletters")

    consent.consent_revoke(tenant=tenant_a, contact=contact, topic=topic, evidence=evidence())

    assert [(queue, name) for queue, name, _ in queued] == [
        ("marketing", "journeys.tasks.journeys_advance_positions")
    ]

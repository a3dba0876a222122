"""The send step's limits: quiet hours in the contact's time zone, and the frequency cap shared with
campaigns."""

from __future__ import annotations

import datetime
import uuid
import zoneinfo

import pytest

from contacts.models import Contact
from delivery.models import Message
from healthmail.tenants.context import tenant_context
from journeys.models import Position, StepLog
from journeys.services import engine

from .conftest import activated, definition, patient
from .steps_support import EXIT, enrol_and_run, position_of, quiet_journey

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_wakeups")]


def test_quiet_hours_hold_the_email_until_morning_in_the_contacts_zone(tenant_a, people, ready):
    journey = quiet_journey(tenant_a, people, ready)
    contact = patient(tenant_a)
    with tenant_context(tenant_a):
        Contact.objects.filter(pk=contact.pk).update(state="CA")
    pacific = zoneinfo.ZoneInfo("America/Los_Angeles")
    night = datetime.datetime(2027, 3, 10, 23, 0, tzinfo=pacific)
    morning = datetime.datetime(2027, 3, 11, 8, 0, tzinfo=pacific)

    enrol_and_run(tenant_a, journey, [contact], now=night)
    held = position_of(tenant_a, journey, contact)
    with tenant_context(tenant_a):
        assert not Message.objects.filter(contact=contact, source_type="journey").exists()
    assert (held.step, held.due_at) == ("mail", morning)

    while engine.positions_advance(tenant=tenant_a, now=morning).advanced:
        pass
    with tenant_context(tenant_a):
        assert Message.objects.filter(contact=contact, source_type="journey").count() == 1
        done = Position.objects.get(pk=held.pk)
        assert done.exit_reason == "completed"
        assert done.visits == {"mail": 1, "done": 1}


def test_the_frequency_cap_counts_campaign_and_journey_email_together(tenant_a, people, ready):
    from delivery.outbox import OutboxRecipient, message_enqueue_many

    send = {
        "type": "send", "template_id": str(ready["template"].pk), "purpose": "marketing",
        "topic": "marketing_newsletters", "next": "done",
    }  # fmt: skip
    body = definition(
        template_id=ready["template"].pk,
        sender_domain_id=ready["sender_domain"].pk,
        entry={"kind": "manual"},
        start="mail",
        steps={"mail": send, **EXIT},
        frequency_cap={"count": 1, "days": 7},
    )
    journey = activated(tenant_a, people, body)
    capped, free = patient(tenant_a), patient(tenant_a)
    message_enqueue_many(
        tenant=tenant_a, stream="marketing", source_type="campaign", source_id=str(uuid.uuid4()),
        purpose="marketing", topic="marketing_newsletters", uses_phi=False,
        sender_domain=ready["sender_domain"], recipients=[OutboxRecipient(capped.pk, capped.email)],
    )  # fmt: skip

    enrol_and_run(tenant_a, journey, [capped, free])

    with tenant_context(tenant_a):
        journey_mail = set(Message.objects.filter(source_type="journey").values_list("contact_id", flat=True))
        skipped = StepLog.objects.get(journey=journey, contact=capped, step="mail")
    assert journey_mail == {free.pk}
    assert (skipped.outcome, skipped.detail) == ("skipped", "frequency_cap")
    assert position_of(tenant_a, journey, capped).exit_reason == "completed"


def test_a_contact_deleted_but_kept_by_a_legal_hold_gets_no_further_email(tenant_a, people, ready):
    """A legal hold keeps a deleted contact's data (address included) until it is released; the send
    step still refuses it (`contact_deleted`) and the contact leaves the journey there."""
    from contacts.services import contact_delete
    from retention import holds

    from .conftest import SYSTEM

    send = {
        "type": "send", "template_id": str(ready["template"].pk), "purpose": "marketing",
        "topic": "marketing_newsletters",
    }  # fmt: skip
    body = definition(
        template_id=ready["template"].pk,
        sender_domain_id=ready["sender_domain"].pk,
        entry={"kind": "manual"},
        start="first",
        steps={
            "first": {**send, "next": "pause"},
            "pause": {"type": "wait", "seconds": 3600, "next": "second"},
            "second": {**send, "next": "done"},
            **EXIT,
        },
    )
    journey = activated(tenant_a, people, body)
    held, other = patient(tenant_a), patient(tenant_a)
    enrol_and_run(tenant_a, journey, [held, other])
    holds.hold_create(
        tenant=tenant_a,
        actor=people["compliance"].actor,
        matter="Roe v. Clinic",
        reason="Pending litigation",
        counsel="Firm LLP",
        scope=holds.HoldScope(contact_ids=(held.pk,)),
    )
    contact_delete(tenant=tenant_a, actor=SYSTEM, contact=held, reason="Asked to be forgotten")
    with tenant_context(tenant_a):
        assert Contact.objects.get(pk=held.pk).email_index is not None  # kept whole by the hold

    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2)
    while engine.positions_advance(tenant=tenant_a, now=later).advanced:
        pass

    with tenant_context(tenant_a):
        sent = list(Message.objects.filter(source_type="journey").values_list("contact_id", "source_id"))
        refused = StepLog.objects.get(journey=journey, contact=held, step="second")
    assert sorted(c for c, s in sent if s.endswith(":second")) == [other.pk]
    assert [c for c, s in sent if s.endswith(":first")].count(held.pk) == 1
    assert (refused.outcome, refused.detail) == ("refused", "contact_deleted")
    assert position_of(tenant_a, journey, held).exit_reason == "send_refused:contact_deleted"

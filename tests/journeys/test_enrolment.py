"""Manual enrolment of a segment; the cycle cap (date triggers: test_date_trigger.py)."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from contacts.models import Contact
from healthmail.tenants.context import tenant_context
from journeys.models import Position, StepLog
from journeys.services import engine, enrolment
from tests.campaigns.conftest import segment

from .conftest import SYSTEM, active_journey, patient

pytestmark = pytest.mark.django_db


def test_manual_enrolment_of_a_segment_enters_its_members_once(tenant_a):
    journey = active_journey(tenant_a)
    members = [patient(tenant_a, opt_in=False) for _ in range(3)]
    everyone = segment(tenant_a)

    first = enrolment.journey_enrol_segment(tenant=tenant_a, actor=SYSTEM, journey=journey, segment=everyone)
    second = enrolment.journey_enrol_segment(tenant=tenant_a, actor=SYSTEM, journey=journey, segment=everyone)

    assert (first, second) == (len(members), 0)


def test_the_cycle_cap_ends_a_contact_going_round_a_loop(tenant_a):
    steps = {
        "tag": {"type": "update", "add_tag": "reminded", "next": "wait"},
        "wait": {"type": "wait", "seconds": 3600, "next": "tag"},
    }
    journey = active_journey(tenant_a, steps=steps)
    with tenant_context(tenant_a):
        from journeys.models import JourneyVersion

        version = JourneyVersion.objects.get(journey=journey)
        version.definition = {**version.definition, "start": "tag", "cycle_cap": 2}
        version.save(update_fields=["definition"])
    contact = patient(tenant_a, opt_in=False)
    enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)

    now = timezone.now()
    for hours in range(0, 10):
        engine.positions_advance(tenant=tenant_a, now=now + datetime.timedelta(hours=hours, minutes=1))

    with tenant_context(tenant_a):
        position = Position.objects.get(journey=journey, contact=contact)
        assert (position.state, position.exit_reason) == ("exited", "cycle_cap")
        assert StepLog.objects.filter(position=position, step="tag", outcome="updated").count() == 2
        from contacts.tagging import tag_token

        assert Contact.objects.get(pk=contact.pk).tag_tokens == [tag_token(tenant_a, "reminded")]

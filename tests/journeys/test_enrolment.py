"""Entry triggers: a date field relative to today, manual enrolment of a segment; the cycle cap; no
contact advances twice when two workers claim at once."""

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


def test_date_matches_anniversaries_offsets_and_leap_days():
    today = datetime.date(2027, 3, 10)
    assert enrolment.date_matches(datetime.date(1980, 3, 10), today=today, offset_days=0, anniversary=True)
    assert not enrolment.date_matches(
        datetime.date(1980, 3, 11), today=today, offset_days=0, anniversary=True
    )
    # an appointment two days ahead: its date minus 2 days is today
    assert enrolment.date_matches(datetime.date(2027, 3, 12), today=today, offset_days=-2, anniversary=False)
    assert enrolment.date_matches(
        datetime.date(2000, 2, 29), today=datetime.date(2027, 2, 28), offset_days=0, anniversary=True
    )


def test_the_birthday_trigger_enters_todays_birthdays_once_a_day(tenant_a):
    journey = active_journey(tenant_a, entry={"kind": "date", "field": "birth_date", "offset_days": 0})
    today = datetime.date(2027, 3, 10)
    birthday, other = patient(tenant_a, opt_in=False), patient(tenant_a, opt_in=False)
    with tenant_context(tenant_a):
        for contact, born in ((birthday, "1980-03-10"), (other, "1980-03-11")):
            contact.birth_date = born
            contact.save(update_fields=["birth_date"])
        journey.refresh_from_db()

    assert enrolment.journey_date_enrol(tenant=tenant_a, journey=journey, today=today) == 1
    assert enrolment.journey_date_enrol(tenant=tenant_a, journey=journey, today=today) == 0
    with tenant_context(tenant_a):
        assert list(Position.objects.filter(journey=journey).values_list("contact_id", flat=True)) == [
            birthday.pk
        ]


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

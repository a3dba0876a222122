"""The date trigger fires on the contact's own local date: its time zone (the `time_zone` demographic)
or the organization's, across UTC date boundaries, DST changes and 29 February."""

from __future__ import annotations

import datetime

import pytest

from contacts.models import Contact, CustomField
from contacts.normalize import time_zone_name
from contacts.services import ContactInput, contact_upsert, custom_field_create
from healthmail.tenants.context import tenant_context
from journeys.models import Position
from journeys.services import dates, enrolment

from .conftest import SYSTEM, active_journey

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
BIRTHDAY = {"kind": "date", "field": "birth_date", "offset_days": 0}
APPOINTMENT = {"kind": "date", "field": "custom.appointment", "offset_days": -2}


def person(tenant, name: str, *, zone: str | None = None, **fields):
    demographics = {"time_zone": zone} if zone else None
    result = contact_upsert(
        tenant=tenant,
        actor=SYSTEM,
        data=ContactInput(email=f"{name}@patients.test", demographics=demographics, **fields),
        source="api",
    )
    assert not result.errors, result.errors
    return result.contact_id


def run(tenant, journey, *when) -> int:
    with tenant_context(tenant):
        journey.refresh_from_db()
    return dates.journey_date_enrol(tenant=tenant, journey=journey, now=datetime.datetime(*when, tzinfo=UTC))


def inside(tenant, journey) -> set:
    with tenant_context(tenant):
        return set(Position.objects.filter(journey=journey).values_list("contact_id", flat=True))


def test_a_birthday_fires_on_the_contacts_own_date_auckland_before_los_angeles(tenant_a):
    journey = active_journey(tenant_a, entry=BIRTHDAY)
    auckland = person(tenant_a, "kiri", zone="Pacific/Auckland", birth_date="1980-03-10")
    los_angeles = person(tenant_a, "dana", zone="America/Los_Angeles", birth_date="1980-03-10")

    # 12:00 UTC on 9 March: already 10 March 01:00 in Auckland (NZDT), still 9 March 04:00 in LA.
    assert run(tenant_a, journey, 2027, 3, 9, 12) == 1
    assert inside(tenant_a, journey) == {auckland}
    # A day later it is LA's 10 March; Auckland is on the 11th and does not enter again.
    assert run(tenant_a, journey, 2027, 3, 10, 12) == 1
    assert inside(tenant_a, journey) == {auckland, los_angeles}


def test_a_contact_enters_once_on_its_day_even_if_it_left_and_the_rule_lets_it_back(tenant_a):
    journey = active_journey(tenant_a, entry=BIRTHDAY)  # re-entry: after_exit
    auckland = person(tenant_a, "aroha", zone="Pacific/Auckland", birth_date="1975-03-10")
    assert run(tenant_a, journey, 2027, 3, 9, 12) == 1
    assert run(tenant_a, journey, 2027, 3, 9, 12, 30) == 0  # the same hour: the trigger does not run
    with tenant_context(tenant_a):
        contact = Contact.objects.get(pk=auckland)
    assert enrolment.journey_remove(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact) == 1

    assert run(tenant_a, journey, 2027, 3, 9, 13) == 0  # still 10 March in Auckland


def test_a_contact_without_a_time_zone_uses_the_organizations(tenant_a):
    assert tenant_a.timezone == "America/New_York"
    journey = active_journey(tenant_a, entry=BIRTHDAY)
    person(tenant_a, "lee", birth_date="1990-03-10")

    assert run(tenant_a, journey, 2027, 3, 10, 4) == 0  # 23:00 on 9 March in New York (EST)
    assert run(tenant_a, journey, 2027, 3, 10, 5) == 1  # 00:00 on 10 March


@pytest.mark.parametrize(
    ("appointment", "before", "after"),
    [
        # Spring forward (14 March 2027, 02:00 EST → 03:00 EDT): midnight is still EST, UTC-5.
        ("2027-03-16", (2027, 3, 14, 4, 30), (2027, 3, 14, 5, 30)),
        # Fall back (7 November 2027, 02:00 EDT → 01:00 EST): midnight is still EDT, UTC-4.
        ("2027-11-09", (2027, 11, 7, 3, 30), (2027, 11, 7, 4, 30)),
    ],
)
def test_appointment_minus_two_days_follows_the_local_clock_across_dst(tenant_a, appointment, before, after):
    custom_field_create(
        tenant=tenant_a,
        actor=SYSTEM,
        key="appointment",
        label="Appointment",
        field_type=CustomField.Type.DATE,
        phi_class="date",
    )
    journey = active_journey(tenant_a, entry=APPOINTMENT)
    person(tenant_a, "sam", zone="America/New_York", custom={"appointment": appointment})

    assert run(tenant_a, journey, *before) == 0  # 23:30 the evening before, local time
    assert run(tenant_a, journey, *after) == 1  # 00:30 two days before the appointment


@pytest.mark.parametrize(
    ("moment", "enters"),
    [
        ((2027, 2, 28, 20), True),  # no 29 February in 2027: celebrated on the 28th
        ((2027, 3, 1, 20), False),
        ((2028, 2, 28, 20), False),  # 2028 has one: the 29th only
        ((2028, 2, 29, 20), True),
    ],
)
def test_a_29_february_birthday(tenant_a, moment, enters):
    journey = active_journey(tenant_a, entry=BIRTHDAY)
    person(tenant_a, "leap", zone="America/Los_Angeles", birth_date="2000-02-29")

    assert run(tenant_a, journey, *moment) == int(enters)


def test_the_time_zone_is_an_iana_name_checked_on_the_way_in(tenant_a):
    bad = contact_upsert(
        tenant=tenant_a,
        actor=SYSTEM,
        data=ContactInput(email="mars@patients.test", demographics={"time_zone": "Mars/Olympus_Mons"}),
        source="api",
    )
    assert [str(e) for e in bad.errors] == [
        "demographics.time_zone: is not a time zone name like America/Chicago"
    ]
    for name in ("localtime", "../etc/passwd", "EST5EDT"):
        assert time_zone_name(name) is None
    assert time_zone_name("pacific/auckland") == "Pacific/Auckland"

"""Quiet hours in the contact's own time zone (the sealed `time_zone` demographic), else its state's,
else the organization's: at one UTC moment contacts in four zones are held or sent as people there
read their clocks, and the zones come from one query of only the contacts a quiet-hours check holds
up."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact
from contacts.services import ContactInput, contact_upsert
from delivery.models import Message
from healthmail.tenants.context import tenant_context
from journeys.models import Position
from journeys.services import engine, enrolment, rules
from tests.delivery.engine_support import opted_in

from .conftest import SYSTEM
from .steps_support import quiet_journey

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
# 16:00 UTC on Wednesday 10 March 2027 (before the US DST change of 14 March; NZ still on NZDT).
NOW = datetime.datetime(2027, 3, 10, 16, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_wakeups(monkeypatch):
    from journeys import tasks

    monkeypatch.setattr(tasks, "advance_soon", lambda **kwargs: None)


def person(tenant, name: str, *, state: str = "", zone: str | None = None) -> Contact:
    demographics = {"time_zone": zone} if zone else None
    result = contact_upsert(
        tenant=tenant,
        actor=SYSTEM,
        data=ContactInput(email=f"{name}@patients.test", demographics=demographics),
        source="api",
    )
    assert not result.errors, result.errors
    with tenant_context(tenant):
        Contact.objects.filter(pk=result.contact_id).update(state=state)
        contact = Contact.objects.get(pk=result.contact_id)
    opted_in(tenant, contact)
    return contact


def test_quiet_hours_follow_the_contacts_own_time_zone_then_state_then_organization(tenant_a, people, ready):
    tenant_a.timezone = "Asia/Tokyo"  # 01:00 on Thursday there: quiet
    tenant_a.save(update_fields=["timezone"])
    journey = quiet_journey(tenant_a, people, ready)
    contacts = {
        # Lives in Auckland (05:00 Thursday, NZDT) though its address says New York (11:00): held.
        "auckland": person(tenant_a, "auckland", state="NY", zone="Pacific/Auckland"),
        # Address in Hawaii (06:00, quiet) but its own zone is New York (11:00): sent.
        "new_york": person(tenant_a, "new-york", state="HI", zone="America/New_York"),
        # No zone of its own: its state's, Hawaii (06:00): held until 08:00 HST.
        "hawaii": person(tenant_a, "hawaii", state="HI"),
        # Neither: the organization's, Tokyo (01:00): held until 08:00 JST.
        "tokyo": person(tenant_a, "tokyo"),
    }
    for contact in contacts.values():
        enrolment.journey_enrol(tenant=tenant_a, actor=SYSTEM, journey=journey, contact=contact)

    while engine.positions_advance(tenant=tenant_a, now=NOW).advanced:
        pass

    with tenant_context(tenant_a):
        sent = set(
            Message.objects.filter(source_type="journey", contact__in=contacts.values()).values_list(
                "contact_id", flat=True
            )
        )
        held = {
            p.contact_id: p.due_at
            for p in Position.objects.filter(journey=journey, step="mail", state=Position.State.WAITING)
        }
    assert sent == {contacts["new_york"].pk}
    assert held == {
        contacts["auckland"].pk: datetime.datetime(2027, 3, 10, 19, 0, tzinfo=UTC),  # 08:00 NZDT
        contacts["hawaii"].pk: datetime.datetime(2027, 3, 10, 18, 0, tzinfo=UTC),  # 08:00 HST
        contacts["tokyo"].pk: datetime.datetime(2027, 3, 10, 23, 0, tzinfo=UTC),  # 08:00 JST
    }


def test_the_zones_of_a_batch_take_one_query_of_only_the_contacts_checked(tenant_a):
    checked = [person(tenant_a, f"checked{i}", state="CA", zone="Pacific/Auckland") for i in range(5)]
    other = person(tenant_a, "other", zone="Europe/London")
    with tenant_context(tenant_a), CaptureQueriesContext(connection) as queries:
        zones = rules.contact_zones(tenant=tenant_a, contact_ids=[c.pk for c in checked])

    assert {str(zone) for zone in zones.values()} == {"Pacific/Auckland"}
    assert set(zones) == {c.pk for c in checked}  # the other contact is neither read nor decrypted
    assert other.pk not in zones
    contact_reads = [q["sql"] for q in queries.captured_queries if '"contacts_contact"' in q["sql"]]
    assert len(contact_reads) == 1, contact_reads

"""45 CFR 164.412, paragraph by paragraph: (a) a written statement delays the notices for the time it
specifies; (b) an oral one, documented with the official's identity, for at most 30 days unless a
written statement is submitted meanwhile. The deadlines are tolled; the clocks on the pages show it;
no individual notice goes out while a delay is in force."""

from __future__ import annotations

import datetime

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from healthmail.accounts.roles import Role
from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context
from incidents import deadlines, delays, notices, selectors
from incidents.deadlines import Audience, oral_delay, tolled, written_delay
from incidents.models import LawEnforcementDelay

from .helpers import decided_breach, officer, patients

D = datetime.date
DAY = datetime.timedelta(days=1)


# --- the arithmetic (pure) ----------------------------------------------------------------------


def test_a_written_statement_delays_for_the_time_it_specifies():
    """(a): discovered March 1, due April 30; a written statement on March 11 asks until May 10."""
    discovered = D(2026, 3, 1)
    due = discovered + datetime.timedelta(days=60)
    assert due == D(2026, 4, 30)
    period = written_delay(D(2026, 3, 11), D(2026, 5, 10))
    assert tolled(due, discovered, [period]) == due + datetime.timedelta(days=60)  # 60 days held back
    with pytest.raises(deadlines.DeadlineInputError):
        written_delay(D(2026, 3, 11), D(2026, 3, 11))


def test_an_oral_statement_delays_no_longer_than_30_days():
    """(b): temporarily and no longer than 30 days from the date of the oral statement."""
    assert oral_delay(D(2026, 3, 11)) == (D(2026, 3, 11), D(2026, 4, 10))
    discovered = D(2026, 3, 1)
    due = discovered + datetime.timedelta(days=60)
    assert tolled(due, discovered, [oral_delay(D(2026, 3, 11))]) == due + datetime.timedelta(days=30)


def test_a_written_statement_submitted_within_the_30_days_continues_the_oral_delay():
    """(b) "unless a written statement as described in (a) is submitted during that time"."""
    discovered = D(2026, 3, 1)
    due = discovered + datetime.timedelta(days=60)
    oral = oral_delay(D(2026, 3, 11))  # to April 10
    written = written_delay(D(2026, 4, 1), D(2026, 6, 1))  # within the 30 days
    assert tolled(due, discovered, [oral, written]) == due + (D(2026, 6, 1) - D(2026, 3, 11))
    late = written_delay(D(2026, 4, 20), D(2026, 5, 20))  # after the oral delay lapsed: a gap runs
    held = (D(2026, 4, 10) - D(2026, 3, 11)) + (D(2026, 5, 20) - D(2026, 4, 20))
    assert tolled(due, discovered, [oral, late]) == due + held


def test_a_statement_after_the_deadline_does_not_revive_it_and_one_before_discovery_counts_from_it():
    discovered = D(2026, 3, 1)
    due = discovered + datetime.timedelta(days=60)
    assert tolled(due, discovered, [oral_delay(due + DAY)]) == due
    early = written_delay(D(2026, 2, 20), D(2026, 3, 11))  # stated before the discovery date
    assert tolled(due, discovered, [early]) == due + datetime.timedelta(days=10)


def test_every_audience_is_tolled_across_the_year_end_and_a_leap_day():
    """164.412 covers the notices of 164.404, 164.406, 164.408 and 164.410, the annual log too."""
    discovered = D(2027, 12, 20)
    found = deadlines.breach_deadlines(
        discovered_on=discovered,
        affected=600,
        residents_by_state={"TX": 501},
        baa_days=30,
        business_associate=True,
        delays=[written_delay(D(2027, 12, 25), D(2028, 1, 14))],  # 20 days
    )
    by_audience = {d.audience: d for d in found}
    assert by_audience[Audience.INDIVIDUALS].due_on == D(2028, 2, 18) + datetime.timedelta(days=20)
    assert by_audience[Audience.COVERED_ENTITY].due_on == D(2028, 1, 19) + datetime.timedelta(days=20)
    assert all(d.tolled_days == 20 for d in found)
    assert "164.412" in by_audience[Audience.MEDIA].why
    small = deadlines.breach_deadlines(
        discovered_on=D(2027, 12, 20),
        affected=3,
        residents_by_state={"TX": 3},
        delays=[oral_delay(D(2027, 12, 30))],
    )
    log = next(d for d in small if d.audience == Audience.HHS_ANNUAL_LOG)
    assert log.due_on == D(2028, 2, 29) + datetime.timedelta(days=30)  # 2028 is a leap year


# --- recorded on an incident ---------------------------------------------------------------------


needs_db = pytest.mark.django_db


@needs_db
def test_a_recorded_delay_moves_the_clocks_and_holds_the_notices(tenant_a):
    from tests.delivery.patient_mail import patient_sender

    patient_sender(tenant_a)
    incident = decided_breach(tenant_a, patients(tenant_a, 1, label="le"))
    user = officer(tenant_a)
    today = timezone.localdate()
    with tenant_context(tenant_a):
        before = {c.deadline.audience: c.deadline.due_on for c in selectors.clocks_of(incident)}
    delays.delay_record(
        tenant=tenant_a,
        user=user,
        role=Role.COMPLIANCE_OFFICER,
        incident=incident,
        kind="oral",
        ground="investigation",
        official="Det. Sample Person, Example County Sheriff's Office",
        stated_on=today,
        statement="Notifying now would alert the suspect; a written request will follow.",
    )
    with tenant_context(tenant_a):
        after = {c.deadline.audience: c.deadline.due_on for c in selectors.clocks_of(incident)}
        delay = LawEnforcementDelay.objects.get(incident=incident)
    assert delay.delay_until == today + datetime.timedelta(days=30)
    assert after[Audience.INDIVIDUALS] == before[Audience.INDIVIDUALS] + datetime.timedelta(days=30)
    with pytest.raises(Conflict, match=r"164\.412"):
        notices.individual_notices_send(
            tenant=tenant_a, user=user, role=Role.COMPLIANCE_OFFICER, incident=incident
        )
    with (
        tenant_context(tenant_a),
        pytest.raises(DatabaseError),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE incidents_lawenforcementdelay SET official = 'Someone else'")


@needs_db
@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"kind": "written", "delay_until": None}, "delay_until"),
        ({"kind": "written", "delay_until": "same day"}, "delay_until"),
        ({"ground": "convenience"}, "ground"),
        ({"official": " "}, "official"),
        ({"statement": ""}, "statement"),
        ({"stated_on": "tomorrow"}, "stated_on"),
    ],
)
def test_a_statement_without_what_164_412_requires_is_refused(tenant_a, changes, code):
    incident = decided_breach(tenant_a, patients(tenant_a, 1, label="ref"))
    today = timezone.localdate()
    values = {
        "kind": "oral",
        "ground": "national_security",
        "official": "Agent Example, Example Agency",
        "stated_on": today,
        "statement": "Disclosure would damage national security.",
    } | changes
    values["delay_until"] = today if values.get("delay_until") == "same day" else values.get("delay_until")
    values["stated_on"] = today + DAY if values["stated_on"] == "tomorrow" else values["stated_on"]
    with pytest.raises(ApplicationError) as refused:
        delays.delay_record(
            tenant=tenant_a, user=officer(tenant_a), role=Role.COMPLIANCE_OFFICER, incident=incident, **values
        )
    assert refused.value.code == code
    with tenant_context(tenant_a):
        assert not LawEnforcementDelay.objects.exists()


@needs_db
def test_the_page_records_a_written_delay_and_shows_the_new_date(member_client, tenant_a):
    incident = decided_breach(tenant_a, patients(tenant_a, 1, label="pg"))
    client = member_client(Role.COMPLIANCE_OFFICER)
    today = timezone.localdate()
    until = today + datetime.timedelta(days=45)
    response = client.post(
        reverse("incidents:delay_record", args=[incident.pk]),
        {
            "delay-kind": "written",
            "delay-ground": "investigation",
            "delay-official": "Sgt. Example, Example Police Department",
            "delay-stated_on": today.isoformat(),
            "delay-delay_until": until.isoformat(),
            "delay-statement": "Written request of today to delay all notices.",
        },
    )
    assert response.status_code == 302
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    due = incident.discovered_on + datetime.timedelta(days=60 + 45)
    assert due.isoformat() in page
    assert "delayed 45 days at law enforcement" in page

"""Notices to HHS, the media of a State and the covered entity (164.406, 164.408, 164.410): which
ones an incident needs, the letters' required content, preparing and recording them as sent (which
stops their clocks), and the refusals."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from healthmail.accounts.roles import Role
from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context
from incidents import audience_notices, clocks
from incidents.deadlines import Audience

from .helpers import decided_breach, officer, patients

pytestmark = pytest.mark.django_db
OFFICER = Role.COMPLIANCE_OFFICER


def _audiences(incident):
    with tenant_context(incident.tenant):
        return [(d.audience, d.state) for d, _ in audience_notices.audience_rows(incident)]


def _pending(incident):
    with tenant_context(incident.tenant):
        return {(d.audience, d.state) for d in clocks.pending_deadlines(incident)}


def test_a_small_business_associate_breach_needs_the_annual_log_and_the_covered_entity(tenant_a):
    people = patients(tenant_a, 2, label="ce")
    incident = decided_breach(tenant_a, people, business_associate=True)
    assert _audiences(incident) == [(Audience.COVERED_ENTITY, ""), (Audience.HHS_ANNUAL_LOG, "")]
    with pytest.raises(ApplicationError, match="does not call for"):
        audience_notices.audience_notice_prepare(
            tenant=tenant_a, user=officer(tenant_a), role=OFFICER, incident=incident, audience=Audience.HHS
        )
    with pytest.raises(ApplicationError, match="does not call for"):
        audience_notices.audience_notice_prepare(
            tenant=tenant_a, user=officer(tenant_a), role=OFFICER, incident=incident,
            audience=Audience.MEDIA, state="TX",
        )  # fmt: skip


def test_the_covered_entity_letter_identifies_each_individual_under_an_audited_read(tenant_a):
    """164.410(c)(1): the identification of each individual; (c)(2): the 164.404(c) content."""
    people = patients(tenant_a, 2, label="ident")
    incident = decided_breach(tenant_a, people, business_associate=True)
    user = officer(tenant_a)
    with tenant_context(tenant_a):
        text = audience_notices.audience_letter(
            tenant=tenant_a, user=user, incident=incident, audience=Audience.COVERED_ENTITY
        )
        reads = AuditEvent.objects.filter(
            tenant=tenant_a, action="phi.read", details__purpose=audience_notices.IDENTIFICATION_PURPOSE
        ).count()
    for person in people:
        assert f"contact {person.pk}" in text
    assert "ident0@patients.example" in text
    assert "Number of individuals affected: 2" in text
    for part in ("What happened", "What information was involved", "What you can do", "What we are doing"):
        assert part in text
    assert reads == 1


def test_prepare_then_sent_stops_the_clock_and_stays_as_recorded(tenant_a):
    incident = decided_breach(tenant_a, patients(tenant_a, 1, label="hhs"))
    user = officer(tenant_a)
    key = (Audience.HHS_ANNUAL_LOG, "")
    who = {"tenant": tenant_a, "user": user, "role": OFFICER, "incident": incident}
    today = timezone.localdate()
    with pytest.raises(Conflict, match="Prepare this notice first"):
        audience_notices.audience_notice_sent(
            **who, audience=key[0], sent_on=today, channel="HHS breach portal"
        )
    notice = audience_notices.audience_notice_prepare(**who, audience=key[0])
    assert len(notice.letter_sha256) == 64
    assert key in _pending(incident)
    with pytest.raises(ApplicationError, match="future"):
        audience_notices.audience_notice_sent(
            **who, audience=key[0], sent_on=today + datetime.timedelta(days=1), channel="HHS breach portal"
        )
    with pytest.raises(ApplicationError, match="before the discovery"):
        audience_notices.audience_notice_sent(
            **who, audience=key[0], sent_on=incident.discovered_on - datetime.timedelta(days=1), channel="x"
        )
    with pytest.raises(ApplicationError, match="how it was sent"):
        audience_notices.audience_notice_sent(**who, audience=key[0], sent_on=today, channel=" ")
    sent = audience_notices.audience_notice_sent(
        **who, audience=key[0], sent_on=today, channel="HHS breach portal", reference="HHS-2026-0001"
    )
    assert (sent.sent_on, sent.reference) == (today, "HHS-2026-0001")
    assert key not in _pending(incident)
    with pytest.raises(Conflict):
        audience_notices.audience_notice_prepare(**who, audience=key[0])
    with tenant_context(tenant_a):
        actions = list(AuditEvent.objects.filter(tenant=tenant_a).values_list("action", flat=True))
    assert "incident.notice_prepare" in actions
    assert "incident.notice_sent" in actions


def test_a_state_over_500_residents_needs_its_media_notice_and_hhs_at_once(tenant_a):
    """164.406(a): more than 500 residents of a State; 164.408(b): 500 or more individuals."""
    people = patients(tenant_a, 501, state="TX", label="media") + patients(
        tenant_a, 3, state="NM", label="nm"
    )
    incident = decided_breach(tenant_a, people)
    assert _audiences(incident) == [(Audience.HHS, ""), (Audience.MEDIA, "TX")]
    user = officer(tenant_a)
    with tenant_context(tenant_a):
        text = audience_notices.audience_letter(
            tenant=tenant_a, user=user, incident=incident, audience=Audience.MEDIA, state="TX"
        )
    assert "residents of TX" in text
    assert "media0@patients.example" not in text  # the media letter names nobody


def test_the_page_prepares_and_records_a_notice(member_client, tenant_a):
    incident = decided_breach(tenant_a, patients(tenant_a, 1, label="page"), business_associate=True)
    client = member_client(OFFICER)
    detail = reverse("incidents:detail", args=[incident.pk])
    assert "Covered entity" in client.get(detail).content.decode()
    data = {"audience": Audience.COVERED_ENTITY, "state": ""}
    client.post(reverse("incidents:audience_notice_prepare", args=[incident.pk]), data)
    sent = {**data, "sent_on": timezone.localdate().isoformat(), "channel": "Email to the privacy officer"}
    client.post(reverse("incidents:audience_notice_sent", args=[incident.pk]), sent)
    assert "through Email to the privacy officer" in client.get(detail).content.decode()
    preview = client.get(reverse("incidents:letter_preview", args=[incident.pk]) + "?audience=covered_entity")
    assert "page0@patients.example" in preview.content.decode()


def test_a_breach_closes_only_once_every_notice_it_calls_for_is_out(tenant_a):
    """164.414: the organization must be able to show every notice went out. Closing stops the clocks
    and their alerts, so a breach with a notice still owed stays open."""
    from incidents import notices, services
    from tests.delivery.patient_mail import patient_sender

    patient_sender(tenant_a)
    incident = decided_breach(tenant_a, patients(tenant_a, 1, label="close"))
    user = officer(tenant_a)
    who = {"tenant": tenant_a, "user": user, "role": OFFICER, "incident": incident}
    with pytest.raises(Conflict, match="Affected individuals"):
        services.incident_close(**who)
    notices.individual_notices_send(**who)
    with pytest.raises(Conflict, match="annual log"):
        services.incident_close(**who)
    audience_notices.audience_notice_prepare(**who, audience=Audience.HHS_ANNUAL_LOG)
    audience_notices.audience_notice_sent(
        **who, audience=Audience.HHS_ANNUAL_LOG, sent_on=timezone.localdate(), channel="HHS breach portal"
    )
    assert services.incident_close(**who).status == "closed"


def test_the_individuals_clock_runs_until_each_affected_individual_has_a_notice(tenant_a):
    """Affected individuals derived again after notices went out: as many notices as individuals is
    not enough, each of them must have one."""
    from incidents import affected, notices
    from tests.delivery.patient_mail import patient_sender
    from tests.incidents.helpers import read_event

    patient_sender(tenant_a)
    first = patients(tenant_a, 2, label="first")
    incident = decided_breach(tenant_a, first)
    user = officer(tenant_a)
    who = {"tenant": tenant_a, "user": user, "role": OFFICER, "incident": incident}
    notices.individual_notices_send(**who)
    assert (Audience.INDIVIDUALS, "") not in _pending(incident)
    others = patients(tenant_a, 2, label="other")
    snoop = officer(tenant_a)  # someone who read only the two others
    event = read_event(tenant_a, snoop, others)
    hour = datetime.timedelta(hours=1)
    assert affected.affected_derive(
        **who, since=event.occurred_at - hour, until=event.occurred_at + hour,
        actor_type="user", actor_id=str(snoop.pk),
    ) == 2  # fmt: skip
    assert (Audience.INDIVIDUALS, "") in _pending(incident)

"""Incidents end to end through the services: open from a break-glass alert, derive the affected
individuals from the audit trail, assess, decide with a second officer, see the deadlines, send the
notices through the secure portal, and find every step in the audit trail."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from audit.alerts import alerts_scan_tenant
from audit.break_glass import break_glass_open
from audit.chain import seal_pending
from audit.models import Alert, AuditEvent
from delivery.models import EncryptionPolicy, Message
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict, PermissionRefused
from healthmail.tenants.context import tenant_context
from incidents import affected, clocks, notices, services
from incidents.deadlines import Audience
from incidents.models import AffectedIndividual, ClockAlert, Evidence, Incident, Notice
from tests.delivery.patient_mail import patient_sender
from tests.factories import MembershipFactory

from .helpers import FACTORS, LETTER, decided_breach, new_incident, officer, patients, read_event

pytestmark = pytest.mark.django_db
OFFICER = Role.COMPLIANCE_OFFICER
HOUR = datetime.timedelta(hours=1)


def _window(**kwargs):
    now = timezone.now()
    return {"since": now - HOUR, "until": now + HOUR, **kwargs}


def _breach_alert(tenant, reviewer_user, contact):
    break_glass_open(
        user=reviewer_user,
        role=Role.CLINICAL_REVIEWER,
        tenant=tenant,
        target_type="contacts.contact",
        target_id=str(contact.pk),
        reason="Patient unconscious in the emergency room",
    )
    seal_pending(tenant.pk)
    alerts_scan_tenant(tenant)
    with tenant_context(tenant):
        return Alert.objects.get(tenant=tenant, rule="break_glass")


def _decided_breach(tenant, first, second, incident):
    services.risk_assess(
        tenant=tenant, user=first, role=OFFICER, incident=incident, factors=FACTORS, probability="not_low"
    )
    services.decision_propose(
        tenant=tenant,
        user=first,
        role=OFFICER,
        incident=incident,
        decision="breach",
        reason="Records were viewed by someone with no duty to protect them.",
    )
    return services.decision_sign_off(tenant=tenant, user=second, role=OFFICER, incident=incident)


def test_an_incident_opened_from_a_break_glass_alert_takes_the_alert_and_its_events_as_evidence(tenant_a):
    reviewer = MembershipFactory(tenant=tenant_a, role=Role.CLINICAL_REVIEWER).user
    (patient,) = patients(tenant_a, 1)
    alert = _breach_alert(tenant_a, reviewer, patient)
    incident = new_incident(tenant_a, officer(tenant_a), alert=alert)
    with tenant_context(tenant_a):
        kinds = sorted(Evidence.objects.filter(incident=incident).values_list("kind", "reference"))
    assert (Evidence.Kind.ALERT, str(alert.pk)) in kinds
    assert [(k, r) for k, r in kinds if k == Evidence.Kind.AUDIT_EVENT] == [
        (Evidence.Kind.AUDIT_EVENT, str(alert.event_ids[0]))
    ]
    assert incident.opened_from_alert_id == alert.pk
    assert incident.occurred_from is not None


def test_discovery_in_the_future_is_refused(tenant_a):
    with pytest.raises(ApplicationError, match="future"):
        new_incident(
            tenant_a, officer(tenant_a), discovered_on=timezone.localdate() + datetime.timedelta(days=1)
        )


def test_only_compliance_officers_open_incidents(tenant_a):
    marketer = MembershipFactory(tenant=tenant_a, role=Role.MARKETER).user
    with pytest.raises(PermissionRefused):
        services.incident_open(
            tenant=tenant_a,
            user=marketer,
            role=Role.MARKETER,
            title="x",
            description="x",
            how_discovered="x",
            discovered_on=timezone.localdate(),
        )


def test_affected_individuals_are_those_the_actor_touched_in_the_window(tenant_a):
    first = officer(tenant_a)
    insider = MembershipFactory(tenant=tenant_a, role=Role.MARKETER).user
    honest = MembershipFactory(tenant=tenant_a, role=Role.MARKETER).user
    touched = patients(tenant_a, 3, state="TX", label="t")
    other = patients(tenant_a, 2, state="CA", label="o")
    read_event(tenant_a, insider, touched[:2])
    read_event(tenant_a, insider, touched[2:], action="contacts.export")
    read_event(tenant_a, honest, other)
    incident = new_incident(tenant_a, first)

    count = affected.affected_derive(
        tenant=tenant_a,
        user=first,
        role=OFFICER,
        incident=incident,
        **_window(actor_type="user", actor_id=str(insider.pk)),
    )
    assert count == 3
    with tenant_context(tenant_a):
        rows = AffectedIndividual.objects.filter(incident=incident)
        assert {r.contact_id for r in rows} == {c.pk for c in touched}
        assert {r.state for r in rows} == {"TX"}
    # Without the actor: everybody the window names.
    assert (
        affected.affected_derive(tenant=tenant_a, user=first, role=OFFICER, incident=incident, **_window())
        == 5
    )
    # A window before the events: nobody (and the earlier result is replaced, not added to).
    past = timezone.now() - datetime.timedelta(days=2)
    assert (
        affected.affected_derive(
            tenant=tenant_a, user=first, role=OFFICER, incident=incident, since=past - HOUR, until=past
        )
        == 0
    )
    with tenant_context(tenant_a):
        assert not AffectedIndividual.objects.filter(incident=incident).exists()


def test_deriving_never_reads_another_tenants_trail(tenant_a, tenant_b):
    first = officer(tenant_a)
    read_event(tenant_b, Actor.system("elsewhere"), patients(tenant_b, 2, label="b"))
    incident = new_incident(tenant_a, first)
    assert (
        affected.affected_derive(tenant=tenant_a, user=first, role=OFFICER, incident=incident, **_window())
        == 0
    )


def test_the_assessment_needs_reasoning_on_all_four_factors(tenant_a):
    first = officer(tenant_a)
    incident = new_incident(tenant_a, first)
    with pytest.raises(ApplicationError, match="actually acquired"):
        services.risk_assess(
            tenant=tenant_a,
            user=first,
            role=OFFICER,
            incident=incident,
            factors={**FACTORS, "factor_acquired": "no"},
            probability="low",
        )


def test_not_a_breach_needs_an_assessment_that_found_a_low_probability(tenant_a):
    first = officer(tenant_a)
    incident = new_incident(tenant_a, first)
    services.risk_assess(
        tenant=tenant_a, user=first, role=OFFICER, incident=incident, factors=FACTORS, probability="not_low"
    )
    with pytest.raises(ApplicationError, match="presumed a breach"):
        services.decision_propose(
            tenant=tenant_a,
            user=first,
            role=OFFICER,
            incident=incident,
            decision="not_breach",
            reason="We think nobody looked at the records at all.",
        )


def test_the_proposer_cannot_sign_off_when_another_officer_can(tenant_a):
    first, second = officer(tenant_a), officer(tenant_a)
    incident = new_incident(tenant_a, first)
    services.risk_assess(
        tenant=tenant_a, user=first, role=OFFICER, incident=incident, factors=FACTORS, probability="not_low"
    )
    services.decision_propose(
        tenant=tenant_a,
        user=first,
        role=OFFICER,
        incident=incident,
        decision="breach",
        reason="Records were viewed by someone with no duty to protect them.",
    )
    with pytest.raises(PermissionRefused, match="Another compliance officer"):
        services.decision_sign_off(tenant=tenant_a, user=first, role=OFFICER, incident=incident)
    incident = services.decision_sign_off(tenant=tenant_a, user=second, role=OFFICER, incident=incident)
    assert incident.status == Incident.Status.BREACH
    assert incident.signed_off_by == second
    with pytest.raises(Conflict):
        services.decision_sign_off(tenant=tenant_a, user=second, role=OFFICER, incident=incident)


def test_the_deadlines_follow_the_affected_and_the_baa_shorter_term(tenant_a):
    with tenant_context(tenant_a):
        from healthmail.tenants.models import BusinessAssociateAgreement

        BusinessAssociateAgreement.objects.filter(tenant=tenant_a).update(breach_notification_days=10)
    first = officer(tenant_a)
    read_event(tenant_a, Actor.system("relay"), patients(tenant_a, 3, state="NY", label="n"))
    discovered = timezone.localdate() - datetime.timedelta(days=2)
    incident = new_incident(tenant_a, first, discovered_on=discovered, business_associate=True)
    affected.affected_derive(tenant=tenant_a, user=first, role=OFFICER, incident=incident, **_window())
    with tenant_context(tenant_a):
        found = {d.audience: d for d in clocks.incident_deadlines(incident)}
    assert found[Audience.COVERED_ENTITY].due_on == discovered + datetime.timedelta(days=10)
    assert found[Audience.INDIVIDUALS].due_on == discovered + datetime.timedelta(days=60)
    assert found[Audience.HHS_ANNUAL_LOG].due_on == datetime.date(
        discovered.year + 1, 3, 1
    ) - datetime.timedelta(days=0 if (discovered.year + 1) % 4 else 1)
    assert Audience.MEDIA not in found


def test_notices_go_through_the_portal_and_substitute_when_no_address(tenant_a):
    first, second = officer(tenant_a), officer(tenant_a)
    patient_sender(tenant_a)
    with_email = patients(tenant_a, 2, label="e")
    without = patients(tenant_a, 1, email=False, label="x")
    read_event(tenant_a, Actor.system("relay"), with_email + without)
    incident = new_incident(tenant_a, first)
    affected.affected_derive(tenant=tenant_a, user=first, role=OFFICER, incident=incident, **_window())
    with pytest.raises(Conflict):  # not decided yet
        notices.individual_notices_send(tenant=tenant_a, user=first, role=OFFICER, incident=incident)
    incident = _decided_breach(tenant_a, first, second, incident)
    with pytest.raises(ApplicationError, match="notice content"):
        notices.individual_notices_send(tenant=tenant_a, user=first, role=OFFICER, incident=incident)
    incident = services.letter_content_set(
        tenant=tenant_a, user=first, role=OFFICER, incident=incident, content=LETTER
    )

    sent = notices.individual_notices_send(tenant=tenant_a, user=first, role=OFFICER, incident=incident)
    assert (sent.portal, sent.substitute) == (2, 1)
    with tenant_context(tenant_a):
        messages = list(Message.objects.filter(source_type=notices.SOURCE_TYPE, source_id=str(incident.pk)))
        assert len(messages) == 2
        assert {m.encryption_policy for m in messages} == {EncryptionPolicy.PORTAL_ALWAYS}
        assert all(m.uses_phi for m in messages)
        assert (
            Notice.objects.filter(incident=incident, method=Notice.Method.SUBSTITUTE).get().contact_id
            == without[0].pk
        )
    from delivery.outbox import message_content

    text = message_content(messages[0]).text
    for part in (*LETTER.values(), incident.description, f"{incident.discovered_on:%B %d, %Y}"):
        assert part in text  # 164.404(c)(1)(A)-(E)
    # Sending again sends nobody twice.
    again = notices.individual_notices_send(tenant=tenant_a, user=first, role=OFFICER, incident=incident)
    assert (again.portal, again.substitute, again.already) == (0, 0, 3)
    # The individuals' clock stops once everyone has a notice.
    with tenant_context(tenant_a):
        assert Audience.INDIVIDUALS not in {d.audience for d in clocks.pending_deadlines(incident)}


def test_clock_alerts_are_raised_once_per_threshold_and_reach_the_alert_list(tenant_a):
    first = officer(tenant_a)
    read_event(tenant_a, Actor.system("relay"), patients(tenant_a, 1, label="c"))
    discovered = timezone.localdate() - datetime.timedelta(days=40)  # individuals due in 20 days
    incident = new_incident(tenant_a, first, discovered_on=discovered)
    affected.affected_derive(tenant=tenant_a, user=first, role=OFFICER, incident=incident, **_window())
    today = timezone.localdate()
    assert clocks.clock_alerts_raise_tenant(tenant_a, today) == 1
    assert clocks.clock_alerts_raise_tenant(tenant_a, today) == 0  # once
    assert clocks.clock_alerts_raise_tenant(tenant_a, today + datetime.timedelta(days=7)) == 1  # 13 left: 14
    assert clocks.clock_alerts_raise_tenant(tenant_a, today + datetime.timedelta(days=19)) == 1  # 1 left
    with tenant_context(tenant_a):
        assert sorted(
            ClockAlert.objects.filter(incident=incident).values_list("threshold_days", flat=True)
        ) == [1, 14, 30]
    seal_pending(tenant_a.pk)
    alerts_scan_tenant(tenant_a)
    with tenant_context(tenant_a):
        summaries = list(
            Alert.objects.filter(rule="incident_deadline_alert").values_list("severity", "summary")
        )
    assert len(summaries) == 3
    assert (
        "critical",
        f"Breach notice to Affected individuals due in 1 days "
        f"({(discovered + datetime.timedelta(days=60)).isoformat()}, 164.404(b))",
    ) in summaries


def test_every_step_is_in_the_audit_trail(tenant_a):
    first, second = officer(tenant_a), officer(tenant_a)
    patient_sender(tenant_a)
    read_event(tenant_a, Actor.system("relay"), patients(tenant_a, 1, label="a"))
    incident = new_incident(tenant_a, first)
    affected.affected_derive(tenant=tenant_a, user=first, role=OFFICER, incident=incident, **_window())
    incident = _decided_breach(tenant_a, first, second, incident)
    incident = services.letter_content_set(
        tenant=tenant_a, user=first, role=OFFICER, incident=incident, content=LETTER
    )
    notices.individual_notices_send(tenant=tenant_a, user=first, role=OFFICER, incident=incident)
    with tenant_context(tenant_a):
        actions = list(
            AuditEvent.objects.filter(target_type="incidents.incident", target_id=str(incident.pk))
            .order_by("id")
            .values_list("action", flat=True)
        )
    assert actions == [
        "incident.open",
        "incident.derive_affected",
        "incident.risk_assess",
        "incident.decision_propose",
        "incident.decision_sign_off",
        "incident.letter_update",
        "incident.notices_send",
    ]


def test_evidence_must_exist_in_this_organization(tenant_a, tenant_b):
    first = officer(tenant_a)
    incident = new_incident(tenant_a, first)
    own = read_event(tenant_a, Actor.system("relay"), patients(tenant_a, 1, label="ev"))
    foreign = read_event(tenant_b, Actor.system("relay"), patients(tenant_b, 1, label="evb"))
    link = {"tenant": tenant_a, "user": first, "role": OFFICER, "incident": incident}
    evidence = services.evidence_link(**link, kind=Evidence.Kind.AUDIT_EVENT, reference=str(own.pk))
    assert services.evidence_link(**link, kind=Evidence.Kind.AUDIT_EVENT, reference=str(own.pk)) == evidence
    for kind, reference in [
        (Evidence.Kind.AUDIT_EVENT, str(foreign.pk)),
        (Evidence.Kind.MESSAGE, "not-an-id"),
        (Evidence.Kind.EXPORT, "00000000-0000-0000-0000-000000000000"),
    ]:
        with pytest.raises(ApplicationError, match="in this organization"):
            services.evidence_link(**link, kind=kind, reference=reference)
    with tenant_context(tenant_a):
        assert (
            AuditEvent.objects.filter(action="incident.evidence_link", target_id=str(incident.pk)).count()
            == 1
        )


def test_deriving_leaves_out_the_reads_the_incidents_own_notices_made(tenant_a):
    """Sending notices reads the addresses (a phi.read by the officer): an officer deriving another
    incident's affected individuals with themselves as the actor finds nobody from that."""
    patient_sender(tenant_a)
    incident = decided_breach(tenant_a, patients(tenant_a, 2, label="own"))
    user = officer(tenant_a)
    notices.individual_notices_send(tenant=tenant_a, user=user, role=OFFICER, incident=incident)
    other = new_incident(tenant_a, user)
    window = _window(actor_type="user", actor_id=str(user.pk))
    assert affected.affected_derive(tenant=tenant_a, user=user, role=OFFICER, incident=other, **window) == 0

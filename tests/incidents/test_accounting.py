"""Accounting of disclosures (164.528): per patient, six years, from the audit trail; signed with the
tenant's key and verified with its published public key; treatment/operations reads and other
patients' disclosures are not in it."""

from __future__ import annotations

import datetime
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.crypto import signing
from healthmail.errors import NotFound
from healthmail.tenants.context import tenant_context
from incidents import accounting, affected, services
from incidents.models import Incident
from retention.exports import ExportScope, evidence_export_create

from .helpers import FACTORS, new_incident, officer, patients, read_event

pytestmark = pytest.mark.django_db
OFFICER = Role.COMPLIANCE_OFFICER
HOUR = datetime.timedelta(hours=1)


def _public_key(tenant) -> str:
    with tenant_context(tenant):
        return signing.signing_key_current(tenant).public_key


def _breach(tenant, contacts):
    first, second = officer(tenant), officer(tenant)
    read_event(tenant, Actor.system("relay"), contacts)
    incident = new_incident(tenant, first)
    now, who = timezone.now(), {"tenant": tenant, "role": OFFICER, "incident": incident}
    affected.affected_derive(user=first, since=now - HOUR, until=now + HOUR, **who)
    services.risk_assess(user=first, factors=FACTORS, probability="not_low", **who)
    services.decision_propose(
        user=first, decision="breach", reason="Viewed by an unauthorized person.", **who
    )
    return services.decision_sign_off(user=second, **who)


def test_the_accounting_lists_exports_and_breaches_of_this_patient_only(tenant_a):
    patient, other = patients(tenant_a, 2, label="acc")
    user = officer(tenant_a)
    read_event(tenant_a, user, [patient])  # an operations read: not a disclosure to account for
    evidence_export_create(
        tenant=tenant_a,
        actor=Actor.for_user(user),
        purpose="Subpoena in Doe v. Clinic",
        recipient="Counsel Example LLP",
        scope=ExportScope(contact_ids=(patient.pk,)),
    )
    evidence_export_create(
        tenant=tenant_a,
        actor=Actor.for_user(user),
        purpose="Audit",
        recipient="Other Auditor",
        scope=ExportScope(contact_ids=(other.pk,)),
    )
    incident = _breach(tenant_a, [patient])

    signed = accounting.accounting_build(tenant=tenant_a, actor=Actor.for_user(user), contact_id=patient.pk)
    entries = signed["document"]["disclosures"]
    # In date order: the breach was discovered three days ago, the export is today.
    assert [e["recipient"] for e in entries] == ["Unauthorized person (breach)", "Counsel Example LLP"]
    assert entries[1]["purpose"] == "Subpoena in Doe v. Clinic"
    assert entries[0]["source"] == {"incident": str(incident.pk)}
    assert all({"date", "recipient", "description", "purpose"} <= set(e) for e in entries)  # 164.528(b)(2)
    today = timezone.localdate()
    assert signed["document"]["period"] == {
        "from": accounting.period_start(today).isoformat(),
        "to": today.isoformat(),
    }
    with tenant_context(tenant_a):
        assert AuditEvent.objects.filter(
            action="disclosures.accounting_issue", contact_ids=[patient.pk]
        ).exists()


def test_it_verifies_with_the_tenant_public_key_and_not_after_an_edit(tenant_a, tenant_b):
    (patient,) = patients(tenant_a, 1, label="ver")
    signed = accounting.accounting_build(tenant=tenant_a, actor=Actor.system("tests"), contact_id=patient.pk)
    assert accounting.accounting_verify(signed, public_key=_public_key(tenant_a))
    tampered = json.loads(json.dumps(signed))
    tampered["document"]["disclosures"] = [
        {"date": "2026-01-01", "recipient": "x", "description": "", "purpose": ""}
    ]
    assert not accounting.accounting_verify(tampered, public_key=_public_key(tenant_a))
    assert not accounting.accounting_verify(signed, public_key=_public_key(tenant_b))


def test_breaches_older_than_six_years_are_left_out(tenant_a):
    (patient,) = patients(tenant_a, 1, label="old")
    incident = _breach(tenant_a, [patient])
    with tenant_context(tenant_a):
        Incident.objects.filter(pk=incident.pk).update(
            occurred_from=timezone.now() - datetime.timedelta(days=6 * 366 + 2)
        )
    signed = accounting.accounting_build(tenant=tenant_a, actor=Actor.system("tests"), contact_id=patient.pk)
    assert signed["document"]["disclosures"] == []


@pytest.mark.parametrize(
    ("today", "start"),
    [
        (datetime.date(2026, 12, 7), datetime.date(2020, 12, 7)),
        (datetime.date(2028, 2, 29), datetime.date(2022, 2, 28)),
    ],
)
def test_the_period_is_six_years(today, start):
    assert accounting.period_start(today) == start


def test_a_foreign_patient_is_not_found(tenant_a, tenant_b):
    (foreign,) = patients(tenant_b, 1, label="f")
    with pytest.raises(NotFound):
        accounting.accounting_build(tenant=tenant_a, actor=Actor.system("tests"), contact_id=foreign.pk)


def test_the_download_as_pdf_and_json(member_client, tenant_a, tenant_b):
    (patient,) = patients(tenant_a, 1, label="dl")
    client = member_client(Role.COMPLIANCE_OFFICER)
    url = reverse("incidents:disclosures_accounting")
    pdf = client.get(url, {"contact": str(patient.pk), "format": "pdf"})
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    signed = json.loads(client.get(url, {"contact": str(patient.pk), "format": "json"}).content)
    assert accounting.accounting_verify(signed, public_key=_public_key(tenant_a))
    (foreign,) = patients(tenant_b, 1, label="fd")
    assert client.get(url, {"contact": str(foreign.pk)}).status_code == 404
    assert member_client(Role.MARKETER).get(url, {"contact": str(patient.pk)}).status_code == 403

"""Find the patient: one exact identifier (email, phone, MRN, system:id) through the blind indexes,
audited as a PHI lookup; nothing partial, nothing from another organization. The four forms that
name a patient (audit search, break-glass, legal hold, evidence export) all use it."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from audit.models import AuditEvent, BreakGlassGrant
from contacts.selectors import contact_lookup, contact_lookup_many
from healthmail.accounts.roles import Role
from healthmail.errors import ApplicationError, NotFound
from healthmail.tenants.context import tenant_context
from retention import disposal
from retention.models import EvidenceExport, LegalHold
from tests.factories import MembershipFactory

from .conftest import SYSTEM

pytestmark = pytest.mark.django_db
EMAIL, PHONE, MRN = "found.patient@example.org", "(555) 010-7788", "MRN-2024-118"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)


@pytest.fixture
def patient(tenant_a, make_contact):
    return make_contact(tenant_a, email=EMAIL, phone=PHONE, external_ids={"mrn": MRN, "epic": "E-77"})


@pytest.fixture
def foreign(tenant_b, make_contact):
    return make_contact(tenant_b, email="foreign.patient@example.org", external_ids={"mrn": "MRN-FOREIGN"})


def _lookups(tenant) -> list[AuditEvent]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action="phi.lookup").order_by("id"))


@pytest.mark.parametrize(
    "identifier",
    [EMAIL, " FOUND.Patient@Example.org ", PHONE, "555.010.7788", MRN, "mrn:MRN-2024-118", "epic:E-77"],
)
def test_exact_identifiers_find_the_patient_and_the_lookup_is_audited(tenant_a, patient, identifier):
    found = contact_lookup(tenant=tenant_a, actor=SYSTEM, identifier=identifier, purpose="audit search")
    assert found.pk == patient.pk
    (event,) = _lookups(tenant_a)
    assert event.contact_ids == [patient.pk]
    assert event.outcome == "success"
    assert event.details["purpose"] == "audit search"
    stored = json.dumps(event.details) + event.reason + event.target_id
    for value in (EMAIL, "found.patient", "7788", MRN, "E-77"):
        assert value not in stored  # the identifier itself is never recorded


@pytest.mark.parametrize("identifier", ["found.patient", "example.org", "MRN-2024", "555", "", "F*"])
def test_partial_identifiers_find_nobody(tenant_a, patient, identifier):
    with pytest.raises(NotFound):
        contact_lookup(tenant=tenant_a, actor=SYSTEM, identifier=identifier, purpose="audit search")


def test_another_organizations_patient_is_not_found(tenant_a, patient, foreign):
    for identifier in ("foreign.patient@example.org", "MRN-FOREIGN"):
        with pytest.raises(NotFound):
            contact_lookup(tenant=tenant_a, actor=SYSTEM, identifier=identifier, purpose="audit search")
    assert [e.outcome for e in _lookups(tenant_a)] == ["failure", "failure"]
    assert _lookups(tenant_a)[0].contact_ids == []


def test_a_shared_phone_finds_nobody_and_says_why(tenant_a, patient, make_contact):
    make_contact(tenant_a, email="relative@example.org", phone=PHONE)
    with pytest.raises(ApplicationError, match="Several contacts"):
        contact_lookup(tenant=tenant_a, actor=SYSTEM, identifier=PHONE, purpose="audit search")


def test_several_identifiers_name_the_line_that_fails(tenant_a, patient):
    assert contact_lookup_many(tenant=tenant_a, actor=SYSTEM, identifiers=[EMAIL, MRN], purpose="hold") == (
        patient.pk,
    )
    with pytest.raises(NotFound, match="Patient 2"):
        contact_lookup_many(
            tenant=tenant_a, actor=SYSTEM, identifiers=[EMAIL, "nobody@example.org"], purpose="hold"
        )


# --- The four forms -------------------------------------------------------------------------------


def test_audit_search_finds_the_patient_without_putting_the_identifier_in_a_url(
    member_client, tenant_a, patient
):
    client = member_client(Role.COMPLIANCE_OFFICER)
    response = client.post(reverse("audit:patient_lookup"), {"identifier": EMAIL})
    assert response.status_code == 302
    assert response.url == f"{reverse('audit:event_list')}?contact={patient.pk}"
    page = client.get(response.url)
    assert patient.pk in page.context["page"][0].contact_ids  # the lookup itself is in the trail


def test_audit_search_lookup_of_a_foreign_patient_finds_nobody(member_client, tenant_a, foreign):
    client = member_client(Role.COMPLIANCE_OFFICER)
    response = client.post(
        reverse("audit:patient_lookup"), {"identifier": "foreign.patient@example.org"}, follow=True
    )
    assert "No contact has exactly this" in response.content.decode()
    assert "contact=" not in response.redirect_chain[-1][0]


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.MARKETER, Role.CLINICAL_REVIEWER])
def test_audit_search_lookup_is_for_audit_reviewers(member_client, tenant_a, patient, role):
    response = member_client(role).post(reverse("audit:patient_lookup"), {"identifier": EMAIL})
    assert response.status_code == 403
    assert _lookups(tenant_a) == []


def test_break_glass_finds_the_patient_by_mrn(member_client, tenant_a, patient):
    client = member_client(Role.CLINICAL_REVIEWER)
    response = client.post(
        reverse("audit:break_glass_list"),
        {
            "target_type": "contacts.contact",
            "patient": MRN,
            "reason": "Patient in ER, chart needed now",
            "minutes": 10,
        },
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        grant = BreakGlassGrant.objects.get()
    assert (grant.target_type, grant.target_id) == ("contacts.contact", str(patient.pk))
    assert _lookups(tenant_a)[0].details["purpose"] == "break-glass"


def test_break_glass_cannot_reach_a_foreign_patient(member_client, tenant_a, foreign):
    client = member_client(Role.CLINICAL_REVIEWER)
    response = client.post(
        reverse("audit:break_glass_list"),
        {
            "target_type": "contacts.contact",
            "patient": "MRN-FOREIGN",
            "reason": "Patient in ER, chart needed now",
            "minutes": 10,
        },
    )
    assert response.status_code == 400
    assert "No contact has exactly this" in response.content.decode()
    with tenant_context(tenant_a):
        assert not BreakGlassGrant.objects.exists()


def test_break_glass_needs_a_patient_or_a_record_id(member_client, tenant_a):
    response = member_client(Role.CLINICAL_REVIEWER).post(
        reverse("audit:break_glass_list"),
        {"target_type": "contacts.contact", "reason": "Patient in ER, chart needed now", "minutes": 10},
    )
    assert response.status_code == 400
    assert "Find the patient, or give the record id" in response.content.decode()


def test_legal_hold_names_patients_by_identifier(member_client, tenant_a, patient, foreign):
    client = member_client(Role.COMPLIANCE_OFFICER)
    form = {
        "matter": "Doe v. Clinic",
        "reason": "Complaint served",
        "counsel": "Firm LLP",
        "review_every_days": 30,
    }
    refused = client.post(reverse("retention:hold_create"), {**form, "patients": f"{EMAIL}\nMRN-FOREIGN"})
    assert refused.status_code == 200
    assert "Patient 2: No contact has exactly this" in refused.content.decode()
    placed = client.post(reverse("retention:hold_create"), {**form, "patients": f"{EMAIL}\nmrn:{MRN}"})
    assert placed.status_code == 302
    with tenant_context(tenant_a):
        assert LegalHold.objects.get().contact_ids == [patient.pk]


def test_evidence_export_names_patients_by_identifier(member_client, tenant_a, patient):
    client = member_client(Role.COMPLIANCE_OFFICER)
    response = client.post(
        reverse("retention:export_list"), {"purpose": "OCR audit", "recipient": "HHS OCR", "patients": PHONE}
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        export = EvidenceExport.objects.get()
    assert export.scope["contact_ids"] == [str(patient.pk)]


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.MARKETER, Role.CLINICAL_REVIEWER])
def test_hold_and_export_lookups_need_their_permission(member_client, tenant_a, patient, role):
    client = member_client(role)
    assert client.post(reverse("retention:hold_create"), {"patients": EMAIL}).status_code == 403
    assert client.post(reverse("retention:export_list"), {"patients": EMAIL}).status_code == 403
    assert _lookups(tenant_a) == []


def test_an_officer_elsewhere_finds_nobody_here(member_client, tenant_b, patient):
    MembershipFactory(tenant=tenant_b, role=Role.COMPLIANCE_OFFICER)
    client = member_client(Role.COMPLIANCE_OFFICER, tenant=tenant_b)
    response = client.post(reverse("audit:patient_lookup"), {"identifier": EMAIL})
    assert response.url == reverse("audit:event_list")
    assert _lookups(tenant_b)[0].outcome == "failure"

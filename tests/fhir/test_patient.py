"""FHIR Patient: upsert into contacts (same service, encryption and audit), read masked by scope,
search by identifier; every refusal an OperationOutcome."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient

from contacts.models import Contact
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events

from .conftest import FHIR, assert_outcome
from .examples import MRN_SYSTEM, PATIENT_EXAMPLE, us_patient

pytestmark = pytest.mark.django_db
WRITER = ["contacts:write", "contacts:read", "contacts:phi"]


def test_the_official_example_is_refused_for_its_australian_address_with_the_element_named(fhir):
    response = fhir(WRITER).post("Patient", PATIENT_EXAMPLE)
    body = assert_outcome(response, 422, "validation_failed")
    assert {tuple(issue.get("expression", [])) for issue in body["issue"][1:]} == {("address",)}


def test_create_then_update_by_identifier_is_one_contact_encrypted_and_audited(tenant_a, fhir):
    client = fhir(WRITER)
    created = client.post("Patient", us_patient())
    assert created.status_code == 201, created.content
    assert created["Content-Type"] == FHIR
    patient = Patient.model_validate(created.json())
    assert created["Location"].endswith(f"/api/fhir/r4/Patient/{patient.id}")
    assert patient.name[0].family == "Chalmers"
    assert patient.name[0].given == ["Peter", "James"]
    assert [(i.system, i.value) for i in patient.identifier] == [(MRN_SYSTEM, "12345")]
    assert str(patient.birthDate) == "1974-12-25"
    assert patient.address[0].state == "CA"

    changed = us_patient(email="jim.chalmers@patients.test")
    updated = client.post("Patient", changed)
    assert updated.status_code == 200, updated.content
    assert updated.json()["id"] == patient.id  # matched by the MRN, not a second contact
    with tenant_context(tenant_a):
        [contact] = Contact.objects.filter(deleted_at__isnull=True)
        raw = Contact.objects.filter(pk=contact.pk).values_list("email", flat=True).query
    assert contact.email == "jim.chalmers@patients.test"
    assert str(contact.pk) == patient.id
    assert "jim.chalmers" not in str(raw)  # sealed column: the query reads ciphertext
    assert audit_events(tenant=tenant_a, action="contacts.upsert")[-1].details["source"] == "fhir"


def test_writer_without_phi_is_told_accepted_only(tenant_a, fhir):
    response = fhir(["contacts:write"]).post("Patient", us_patient())
    body = assert_outcome(response, 200, "accepted")
    assert body["issue"][0]["severity"] == "information"
    assert "Location" not in response


def test_read_is_masked_without_phi_and_tagged_redacted(tenant_a, fhir):
    created = fhir(WRITER).post("Patient", us_patient()).json()
    masked = fhir(["contacts:read"]).get(f"Patient/{created['id']}")
    assert masked.status_code == 200
    patient = Patient.model_validate(masked.json())
    assert patient.meta.security[0].code == "REDACTED"
    assert "Chalmers" not in masked.content.decode()
    assert "peter.chalmers@patients.test" not in masked.content.decode()
    assert patient.identifier is None
    assert patient.birthDate is None
    reads = audit_events(tenant=tenant_a, action="phi.read")
    assert reads
    assert reads[-1].details.get("purpose") == "fhir patient read"


def test_fhir_answers_are_not_stored_by_any_cache(fhir):
    client = fhir(WRITER)
    created = client.post("Patient", us_patient())
    answers = [
        created,
        client.get(f"Patient/{created.json()['id']}"),
        client.get("Patient", identifier=f"{MRN_SYSTEM}|12345"),
        client.get("Patient/00000000-0000-0000-0000-000000000000"),
    ]
    assert [answer.status_code for answer in answers] == [201, 200, 200, 404]
    for answer in answers:
        assert "no-store" in [part.strip() for part in answer.get("Cache-Control", "").split(",")]


def test_search_by_identifier_finds_the_patient_and_an_unknown_one_finds_nobody(tenant_a, fhir):
    created = fhir(WRITER).post("Patient", us_patient()).json()
    reader = fhir(["contacts:read", "contacts:phi"])
    found = reader.get("Patient", identifier=f"{MRN_SYSTEM}|12345")
    bundle = Bundle.model_validate(found.json())
    assert bundle.type == "searchset"
    assert bundle.total == 1
    assert bundle.entry[0].resource.id == created["id"]
    for other in (f"{MRN_SYSTEM}|99999", "urn:oid:9.9.9|12345"):
        assert reader.get("Patient", identifier=other).json()["total"] == 0
    lookups = audit_events(tenant=tenant_a, action="phi.lookup")
    assert [event.outcome for event in lookups[-3:]] == ["success", "failure", "failure"]


def test_foreign_tenants_patient_is_not_found(tenant_a, tenant_b, fhir):
    foreign = fhir(WRITER, tenant=tenant_b).post("Patient", us_patient()).json()
    body = assert_outcome(fhir(WRITER).get(f"Patient/{foreign['id']}"), 404)
    assert body["issue"][0]["code"] == "not-found"
    assert fhir(WRITER).get("Patient", identifier=f"{MRN_SYSTEM}|12345").json()["total"] == 0


@pytest.mark.parametrize(
    ("resource", "status", "code"),
    [
        ({"resourceType": "Observation", "status": "final"}, 422, "validation_failed"),
        ({**us_patient(), "gender": ["male"]}, 422, "validation_failed"),
        ({**us_patient(), "favouriteColour": "blue"}, 422, "validation_failed"),
        ({"resourceType": "Patient", "name": [{"family": "Nobody"}]}, 422, "identifier_required"),
        ("{not json", 400, "malformed_request"),
    ],
)
def test_invalid_resources_are_refused_with_an_operation_outcome(tenant_a, fhir, resource, status, code):
    response = fhir(WRITER).post("Patient", resource)
    assert_outcome(response, status, code)
    with tenant_context(tenant_a):
        assert not Contact.objects.exists()


def test_scopes_and_authentication_are_operation_outcomes(tenant_a, fhir, api):
    assert_outcome(fhir(["contacts:read"]).post("Patient", us_patient()), 403, "permission_denied")
    assert_outcome(fhir(["messages:read"]).get("Patient/00000000-0000-0000-0000-000000000000"), 403)
    anonymous = fhir(key="hm_000000000000_wrong")
    assert_outcome(anonymous.get("Patient", identifier="a|b"), 401, "authentication_failed")


def test_unknown_fhir_urls_and_search_parameters_are_operation_outcomes(fhir):
    client = fhir(WRITER)
    assert_outcome(client.get("Observation"), 404, "not_found")
    assert_outcome(client.get("Patient", name="Chalmers"), 422, "validation_failed")


def test_answers_made_before_any_fhir_view_are_operation_outcomes_too(fhir, settings):
    # The body-size limit answers in middleware, before the view; outages (503) and 500s likewise
    # (tests/outages/test_database_outage.py).
    settings.REQUEST_BODY_MAX_BYTES = 64
    response = fhir(WRITER).post("Patient", us_patient())
    body = assert_outcome(response, 413, "body_too_large")
    assert body["issue"][0]["code"] == "too-costly"

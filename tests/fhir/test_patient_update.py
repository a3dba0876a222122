"""FHIR Patient update (PUT Patient/<id>): the Patient replaces every element we map on the contact the
URL names (never the one its identifiers or email would match), through the same contacts service
(encryption, BAA gate, audit); the id in the body must be the URL's; no versions, so If-Match is
refused; a foreign or unknown id is 404."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.utils import timezone
from fhir.resources.R4B.patient import Patient

from contacts import services as contact_services
from contacts.models import Contact, ContactExternalId
from contacts.normalize import ContactInput
from fhir_api.models import IdentifierSystem
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events
from tests.factories import BaaFactory, ContactFactory, TenantFactory

from .conftest import assert_outcome
from .examples import MRN_SYSTEM, us_patient

pytestmark = pytest.mark.django_db
WRITER = ["contacts:write", "contacts:read", "contacts:phi"]


def _created(client, **patient) -> dict:
    response = client.post("Patient", us_patient(**patient))
    assert response.status_code == 201, response.content
    return response.json()


def _replacement(patient_id: str, **changes) -> dict:
    """A smaller Patient: new name and MRN value, only an email telecom, no address or birth date."""
    return {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": [{"system": MRN_SYSTEM, "value": "67890"}],
        "name": [{"use": "official", "family": "Chalmers-Smith", "given": ["Jim"]}],
        "telecom": [{"system": "email", "value": "jim@patients.test"}],
        **changes,
    }


def _stored(tenant, patient_id) -> Contact:
    with tenant_context(tenant):
        return Contact.objects.get(pk=patient_id)


def test_update_replaces_every_mapped_element_of_the_named_contact(tenant_a, fhir):
    client = fhir(WRITER)
    created = _created(client)
    with tenant_context(tenant_a):  # an element FHIR does not map: kept by an update
        contact_services.contact_upsert(
            tenant=tenant_a,
            actor=Actor.system("tests"),
            data=ContactInput(email="peter.chalmers@patients.test", demographics={"ethnicity": "Other"}),
            source="api",
        )
    response = client.put(f"Patient/{created['id']}", _replacement(created["id"]))
    assert response.status_code == 200, response.content
    patient = Patient.model_validate(response.json())
    assert patient.id == created["id"]
    assert response["Location"].endswith(f"/api/fhir/r4/Patient/{created['id']}")
    assert patient.name[0].family == "Chalmers-Smith"
    assert patient.name[0].given == ["Jim"]
    assert [(t.system, t.value) for t in patient.telecom] == [("email", "jim@patients.test")]
    assert [(i.system, i.value) for i in patient.identifier] == [(MRN_SYSTEM, "67890")]
    assert patient.address is None
    assert patient.birthDate is None
    assert patient.gender is None

    contact = _stored(tenant_a, created["id"])
    assert contact.phone is None
    assert contact.postal_address is None
    assert contact.demographics == {"ethnicity": "Other"}
    reader = fhir(["contacts:read", "contacts:phi"])
    assert reader.get("Patient", identifier=f"{MRN_SYSTEM}|12345").json()["total"] == 0  # link removed
    assert reader.get("Patient", identifier=f"{MRN_SYSTEM}|67890").json()["total"] == 1
    with tenant_context(tenant_a):
        assert Contact.objects.count() == 1
        assert ContactExternalId.objects.filter(contact_id=created["id"]).count() == 1
    event = audit_events(tenant=tenant_a, action="contacts.upsert")[-1]
    assert event.details == {"source": "fhir", "mode": "replace", "rows": 1, "status": "updated"}
    assert event.target_id == created["id"]


def test_an_unchanged_update_and_a_read_modify_write_of_our_own_identifier_systems(tenant_a, fhir):
    with tenant_context(tenant_a):
        result = contact_services.contact_upsert(
            tenant=tenant_a,
            actor=Actor.system("tests"),
            data=ContactInput(email="ann@patients.test", first_name="Ann", external_ids={"crm": "A-1"}),
            source="api",
        )
    client = fhir(WRITER)
    read = client.get(f"Patient/{result.contact_id}").json()
    assert read["identifier"] == [{"system": "urn:healthmail:external-id:crm", "value": "A-1"}]
    again = client.put(f"Patient/{result.contact_id}", read)
    assert again.status_code == 200, again.content
    assert again.json()["identifier"] == read["identifier"]
    assert _stored(tenant_a, result.contact_id).external_ids == {"crm": "A-1"}
    with tenant_context(tenant_a):
        assert not IdentifierSystem.objects.exists()  # our own system kept its name, none registered
    assert audit_events(tenant=tenant_a, action="contacts.upsert")[-1].details["status"] == "unchanged"


def test_the_id_in_the_body_must_be_the_urls(tenant_a, fhir):
    client = fhir(WRITER)
    created = _created(client)
    other = str(uuid.uuid4())
    for body in (_replacement(other), {k: v for k, v in _replacement(other).items() if k != "id"}):
        response = client.put(f"Patient/{created['id']}", body)
        outcome = assert_outcome(response, 400, "id_mismatch")
        assert outcome["issue"][1]["expression"] == ["id"]
    assert _stored(tenant_a, created["id"]).last_name == "Chalmers"


def test_if_match_is_refused_since_patients_carry_no_version(tenant_a, fhir):
    client = fhir(WRITER)
    created = _created(client)
    assert "versionId" not in created.get("meta", {})
    response = client.put(f"Patient/{created['id']}", _replacement(created["id"]), HTTP_IF_MATCH='W/"1"')
    body = assert_outcome(response, 412, "version_mismatch")
    assert body["issue"][0]["code"] == "conflict"
    assert _stored(tenant_a, created["id"]).last_name == "Chalmers"


def test_foreign_and_unknown_ids_are_not_found_and_nothing_changes(tenant_a, tenant_b, fhir):
    foreign = _created(fhir(WRITER, tenant=tenant_b))
    client = fhir(WRITER)
    for patient_id in (foreign["id"], str(uuid.uuid4()), "not-a-uuid"):
        response = client.put(f"Patient/{patient_id}", _replacement(patient_id))
        assert assert_outcome(response, 404)["issue"][0]["code"] == "not-found"
    assert _stored(tenant_b, foreign["id"]).last_name == "Chalmers"
    with tenant_context(tenant_a):
        assert not Contact.objects.exists()  # not an upsert: no contact made for an unknown id


def test_an_email_or_identifier_of_another_contact_is_refused(tenant_a, fhir):
    client = fhir(WRITER)
    first = _created(client)
    second = _created(client, mrn="555", email="second@patients.test")
    taken_email = _replacement(second["id"], identifier=[{"system": MRN_SYSTEM, "value": "555"}])
    taken_email["telecom"] = [{"system": "email", "value": "peter.chalmers@patients.test"}]
    body = assert_outcome(client.put(f"Patient/{second['id']}", taken_email), 422, "validation_failed")
    assert ["telecom"] in [issue.get("expression") for issue in body["issue"]]
    taken_mrn = _replacement(second["id"], identifier=[{"system": MRN_SYSTEM, "value": "12345"}])
    body = assert_outcome(client.put(f"Patient/{second['id']}", taken_mrn), 422, "validation_failed")
    assert ["identifier"] in [issue.get("expression") for issue in body["issue"]]
    assert _stored(tenant_a, first["id"]).email == "peter.chalmers@patients.test"
    assert _stored(tenant_a, second["id"]).email == "second@patients.test"


def test_scopes_masking_and_the_baa_gate(tenant_a, fhir, issue_key):
    created = _created(fhir(WRITER))
    body = _replacement(created["id"])
    assert_outcome(fhir(["contacts:read", "contacts:phi"]).put(f"Patient/{created['id']}", body), 403)
    accepted = fhir(["contacts:write"]).put(f"Patient/{created['id']}", body)
    assert assert_outcome(accepted, 200, "accepted")["issue"][0]["severity"] == "information"
    assert _stored(tenant_a, created["id"]).last_name == "Chalmers-Smith"

    lapsed = TenantFactory(slug="lapsed-baa", name="Clinic Whose BAA Ended")
    baa = BaaFactory(tenant=lapsed)
    contact = ContactFactory(tenant=lapsed, email="someone@patients.test")
    with tenant_context(lapsed):  # the agreement ended after the contact was stored
        ended = timezone.localdate() - datetime.timedelta(days=1)
        type(baa).objects.filter(pk=baa.pk).update(expires_on=ended)
    client = fhir(WRITER, key=issue_key(scopes=WRITER, tenant=lapsed))
    refused = client.put(f"Patient/{contact.pk}", _replacement(str(contact.pk)))
    assert_outcome(refused, 403, "baa_required")
    assert _stored(lapsed, contact.pk).last_name == "Patient"


def test_the_capability_statement_lists_update_without_versions(fhir):
    statement = fhir(WRITER).get("metadata").json()
    [patient] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Patient"]
    assert {i["code"] for i in patient["interaction"]} == {"create", "read", "update", "search-type"}
    assert patient["updateCreate"] is False
    assert patient["versioning"] == "no-version"

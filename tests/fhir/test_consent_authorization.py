"""FHIR Consent as a HIPAA authorization (45 CFR 164.508): recorded through the consent app's service
and validator, read and searched with marketing decisions, masked without contacts:phi, audited,
tenant-isolated, and revoked by an update to `inactive`, which the send gate honours at once."""

from __future__ import annotations

import base64
import copy
import datetime

import pytest
from fhir.resources.R4B.consent import Consent

from consent.authorization_records import tenant_today
from consent.gate import may_send, may_send_batch
from consent.models import Authorization, AuthorizationAttachment, ConsentEvent
from consent.services import topic_by_key
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events

from .conftest import assert_outcome
from .examples import (
    CONSENT_EXAMPLE_SIGNATURE,
    HIPAA_EXTENSION,
    SCANNED_FORM,
    as_hipaa_authorization,
    hipaa_authorization,
    marketing_consent,
    us_patient,
)

pytestmark = pytest.mark.django_db

ALL = ["consent:read", "consent:write", "contacts:phi"]


@pytest.fixture
def patient_id(fhir):
    return (
        fhir(["contacts:write", "contacts:read", "contacts:phi"]).post("Patient", us_patient()).json()["id"]
    )


@pytest.fixture
def today(tenant_a):
    return tenant_today(tenant_a)


def _authorization(patient_id, today, **overrides) -> dict:
    return hipaa_authorization(
        patient_id=patient_id,
        signed_on=overrides.pop("signed_on", today - datetime.timedelta(days=30)),
        expires_on=overrides.pop("expires_on", today + datetime.timedelta(days=300)),
        **overrides,
    )


def _statement(consent: dict, name: str) -> None:
    [outer] = consent["extension"]
    outer["extension"] = [e for e in outer["extension"] if e["url"] != name]


def _sub(resource: dict, name: str) -> list:
    [outer] = [e for e in resource.get("extension", []) if e["url"] == HIPAA_EXTENSION]
    return [
        next(v for k, v in e.items() if k.startswith("value")) for e in outer["extension"] if e["url"] == name
    ]


def _stored(tenant) -> list[Authorization]:
    with tenant_context(tenant):
        return list(Authorization.objects.select_related("text"))


def _marketing_allowed(tenant, contact_id):
    from contacts.models import Contact

    topic = topic_by_key(tenant=tenant, key="marketing_newsletters")
    with tenant_context(tenant):
        contact = Contact.objects.get(pk=contact_id)
    single = may_send(contact=contact, purpose="marketing", uses_phi=True, topic=topic)
    batch = may_send_batch(
        tenant=tenant, contact_ids=[contact.pk], purpose="marketing", uses_phi=True, topic=topic
    )
    assert batch[contact.pk] == single
    return single


def test_an_ehr_records_an_authorization_and_reads_it_back(tenant_a, fhir, patient_id, today):
    client = fhir(ALL)
    created = client.post("Consent", _authorization(patient_id, today))
    assert created.status_code == 201, created.content
    body = created.json()
    Consent.model_validate(body)
    assert created["Location"].endswith(f"/api/fhir/r4/Consent/{body['id']}")
    assert body["status"] == "active"
    assert body["policyRule"]["coding"][0]["code"] == "hipaa-auth"
    assert body["category"][0]["coding"][0]["code"] == "64292-6"

    [stored] = _stored(tenant_a)
    assert str(stored.pk) == body["id"]
    assert (stored.kind, stored.form_source, str(stored.contact_id)) == ("marketing", "ehr", patient_id)
    assert stored.signed_on == today - datetime.timedelta(days=30)
    assert stored.expires_on == today + datetime.timedelta(days=300)
    assert stored.recorded_by.startswith("api_key:")
    assert stored.text.recipients == "Synthetic Clinic's email service provider"
    assert stored.text.disclosers == "Synthetic Clinic and its marketing staff"
    assert stored.text.purpose == "To send you news about services that may interest you."
    assert stored.text.origin == "recorded"
    with tenant_context(tenant_a):
        attachment = AuthorizationAttachment.objects.get(authorization=stored)
    assert (attachment.content_type, base64.b64decode(attachment.content)) == (
        "application/pdf",
        SCANNED_FORM,
    )
    assert audit_events(tenant=tenant_a, action="authorization.record")

    read = client.get(f"Consent/{body['id']}")
    assert read.status_code == 200, read.content
    resource = read.json()
    Consent.model_validate(resource)
    assert resource["dateTime"] == str(today - datetime.timedelta(days=30))
    assert resource["performer"] == [
        {"display": "Peter James Chalmers", "reference": f"Patient/{patient_id}"}
    ]
    assert resource["provision"]["period"]["end"] == str(today + datetime.timedelta(days=300))
    assert {a["role"]["coding"][0]["code"] for a in resource["provision"]["actor"]} == {"CST", "IRCP"}
    assert _sub(resource, "defect") == []
    [event] = [
        e
        for e in audit_events(tenant=tenant_a, action="phi.read")
        if e.details["purpose"] == "fhir consent read"
    ]
    assert "signer_name" in event.details["fields"]
    assert stored.contact_id in event.contact_ids


def test_without_contacts_phi_the_read_is_masked_and_still_audited(tenant_a, fhir, patient_id, today):
    created = fhir(ALL).post("Consent", _authorization(patient_id, today)).json()
    read = fhir(["consent:read"]).get(f"Consent/{created['id']}")
    assert read.status_code == 200, read.content
    resource = read.json()
    Consent.model_validate(resource)
    assert resource["meta"]["security"][0]["code"] == "REDACTED"
    for hidden in ("dateTime", "performer"):
        assert hidden not in resource
    assert "period" not in resource["provision"]
    assert "Chalmers" not in read.content.decode()
    assert str(today - datetime.timedelta(days=30)) not in read.content.decode()
    [event] = [
        e
        for e in audit_events(tenant=tenant_a, action="phi.read")
        if e.details["purpose"] == "fhir consent read"
    ]
    assert event.details["fields"] == ["kind", "status"]


def test_the_same_identifier_twice_answers_the_first_authorization(tenant_a, fhir, patient_id, today):
    client = fhir(ALL)
    first = client.post("Consent", _authorization(patient_id, today))
    again = client.post("Consent", _authorization(patient_id, today))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert len(_stored(tenant_a)) == 1


def test_a_writer_without_consent_read_hears_an_outcome_only(tenant_a, fhir, patient_id, today):
    response = fhir(["consent:write"]).post("Consent", _authorization(patient_id, today))
    assert response.status_code == 201, response.content
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "Chalmers" not in response.content.decode()
    [stored] = _stored(tenant_a)
    assert response["Location"].endswith(f"Consent/{stored.pk}")


def _without(element: str):
    def remove(consent: dict) -> None:
        provision = consent["provision"]
        if element == "phi_description":
            del provision["code"]
        elif element in ("disclosers", "recipients"):
            role = "CST" if element == "disclosers" else "PRCP"
            provision["actor"] = [a for a in provision["actor"] if a["role"]["coding"][0]["code"] != role]
        elif element == "expiration":
            del provision["period"]["end"]
        elif element == "signature":
            del consent["performer"][0]["display"]
        elif element == "signature_date":
            del consent["dateTime"]
        else:
            _statement(consent, element)

    return remove


@pytest.mark.parametrize(
    ("element", "code", "expression"),
    [
        ("phi_description", "missing_phi_description", "Consent.provision.code"),
        ("disclosers", "missing_disclosers", "Consent.provision.actor"),
        ("recipients", "missing_recipients", "Consent.provision.actor"),
        ("purpose", "missing_purpose", f"Consent.extension('{HIPAA_EXTENSION}').extension('purpose')"),
        ("expiration", "missing_expiration", "Consent.provision.period.end"),
        ("signature", "missing_signature", "Consent.performer"),
        ("signature_date", "missing_signature_date", "Consent.dateTime"),
        (
            "revocation-rights",
            "missing_revocation_statement",
            f"Consent.extension('{HIPAA_EXTENSION}').extension('revocation-rights')",
        ),
        (
            "conditioning-statement",
            "missing_conditioning_statement",
            f"Consent.extension('{HIPAA_EXTENSION}').extension('conditioning-statement')",
        ),
        (
            "redisclosure-statement",
            "missing_redisclosure_statement",
            f"Consent.extension('{HIPAA_EXTENSION}').extension('redisclosure-statement')",
        ),
    ],
)
def test_each_missing_core_element_is_refused_naming_it(
    tenant_a, fhir, patient_id, today, element, code, expression
):
    consent = _authorization(patient_id, today)
    _without(element)(consent)
    outcome = assert_outcome(fhir(ALL).post("Consent", consent), 422, "authorization_defective")
    [issue] = outcome["issue"][1:]
    assert issue["expression"] == [expression]
    assert issue["diagnostics"].startswith(f"{code}: ")
    assert "45 CFR 164.508(c)" in issue["diagnostics"]
    assert _stored(tenant_a) == []


def test_the_official_signature_example_made_an_authorization_is_refused_with_every_defect(
    tenant_a, fhir, patient_id
):
    consent = as_hipaa_authorization(CONSENT_EXAMPLE_SIGNATURE, patient_id=patient_id)
    outcome = assert_outcome(fhir(ALL).post("Consent", consent), 422, "authorization_defective")
    codes = sorted(issue["diagnostics"].split(":")[0] for issue in outcome["issue"][1:])
    # Its recipient (PRCP Practitioner/13), signature date and end date are there; the rest is not,
    # and its end (2016-10-10) has long passed.
    assert codes == sorted(
        [
            "missing_phi_description",
            "missing_disclosers",
            "missing_purpose",
            "missing_signature",
            "missing_revocation_statement",
            "missing_conditioning_statement",
            "missing_redisclosure_statement",
            "expired",
        ]
    )
    assert _stored(tenant_a) == []


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (lambda c: c.update(status="proposed"), 422, "status_not_active"),
        (lambda c: c["provision"].update(type="deny"), 422, "provision_required"),
        (lambda c: c["provision"].pop("purpose"), 422, "purpose_of_use_required"),
        (
            lambda c: c["policyRule"]["coding"][0].update(code="hipaa-research"),
            422,
            "purpose_of_use_inconsistent",
        ),
        (
            lambda c: c["extension"][0]["extension"].append({"url": "form-source", "valueCode": "fax"}),
            422,
            "form_source_invalid",
        ),
        (lambda c: c["sourceAttachment"].update(contentType="text/html"), 400, "attachment_type_invalid"),
        (
            lambda c: c.update(patient={"reference": "Patient/00000000-0000-0000-0000-000000000000"}),
            404,
            None,
        ),
    ],
)
def test_consents_that_cannot_be_read_as_an_authorization_record_nothing(
    tenant_a, fhir, patient_id, today, change, status, code
):
    consent = _authorization(patient_id, today)
    change(consent)
    assert_outcome(fhir(ALL).post("Consent", consent), status, code)
    assert _stored(tenant_a) == []


def test_search_by_patient_returns_marketing_decisions_and_authorizations(fhir, patient_id, today):
    client = fhir(ALL)
    client.post("Consent", marketing_consent(patient_id=patient_id, provision="permit"))
    client.post("Consent", marketing_consent(patient_id=patient_id, provision="deny"))
    authorization = client.post("Consent", _authorization(patient_id, today)).json()

    found = client.get("Consent", patient=f"Patient/{patient_id}")
    assert found.status_code == 200, found.content
    bundle = found.json()
    resources = [entry["resource"] for entry in bundle["entry"]]
    for resource in resources:
        Consent.model_validate(resource)
    assert [(r["provision"]["type"], r["status"]) for r in resources] == [
        ("permit", "inactive"),  # replaced by the later deny
        ("deny", "active"),
        ("permit", "active"),  # the authorization
    ]
    assert resources[2]["id"] == authorization["id"]

    loinc = client.get("Consent", patient=patient_id, category="http://loinc.org|64292-6").json()
    assert [e["resource"]["id"] for e in loinc["entry"]] == [authorization["id"]]
    topic = client.get(
        "Consent",
        patient=patient_id,
        category="https://healthmail.example/fhir/CodeSystem/consent-topic|marketing_newsletters",
    ).json()
    assert [e["resource"]["provision"]["type"] for e in topic["entry"]] == ["permit", "deny"]
    assert client.get("Consent", patient=patient_id, category="http://other.example|x").json()["total"] == 0

    event_id = resources[0]["id"]
    read = client.get(f"Consent/{event_id}")
    assert read.status_code == 200
    assert read.json()["category"][0]["coding"][0]["code"] == "marketing_newsletters"


def test_search_needs_a_patient_and_knows_its_parameters(fhir):
    assert_outcome(fhir(ALL).get("Consent"), 422, "validation_failed")
    assert_outcome(fhir(ALL).get("Consent", patient="x", status="active"), 422, "validation_failed")


def test_another_tenants_consents_are_not_found(tenant_a, tenant_b, fhir, patient_id, today):
    created = fhir(ALL).post("Consent", _authorization(patient_id, today)).json()
    event = fhir(ALL).post("Consent", marketing_consent(patient_id=patient_id, provision="permit")).json()
    foreign = fhir(ALL, tenant=tenant_b)
    for consent_id in (created["id"], event["id"]):
        assert_outcome(foreign.get(f"Consent/{consent_id}"), 404, "not_found")
    revoke = {**fhir(ALL).get(f"Consent/{created['id']}").json(), "status": "inactive"}
    assert_outcome(foreign.put(f"Consent/{created['id']}", revoke), 404, "not_found")
    assert foreign.get("Consent", patient=patient_id).json()["total"] == 0
    assert_outcome(foreign.post("Consent", _authorization(patient_id, today, identifier="B-1")), 404)
    [stored] = _stored(tenant_a)
    assert stored.status == "valid"


@pytest.mark.parametrize(
    ("method", "path", "scopes"),
    [
        ("get", "Consent/{id}", ["consent:write", "contacts:phi"]),
        ("get", "Consent?patient={patient}", ["consent:write", "contacts:phi"]),
        ("post", "Consent", ["consent:read", "contacts:phi"]),
        ("put", "Consent/{id}", ["consent:read", "contacts:phi"]),
    ],
)
def test_each_interaction_needs_its_scope(tenant_a, fhir, patient_id, today, method, path, scopes):
    created = fhir(ALL).post("Consent", _authorization(patient_id, today, identifier="S-1")).json()
    client = fhir(scopes)
    target = path.format(id=created["id"], patient=patient_id)
    if method == "get":
        response = client.client.get("/api/fhir/r4/" + target, **client.headers)
    else:
        response = getattr(client, method)(target, {**created, "status": "inactive"})
    assert_outcome(response, 403)
    [stored] = _stored(tenant_a)
    assert stored.status == "valid"


def test_revoking_through_fhir_stops_phi_marketing_at_the_gate(tenant_a, fhir, patient_id, today):
    client = fhir(ALL)
    assert (
        client.post("Consent", marketing_consent(patient_id=patient_id, provision="permit")).status_code
        == 201
    )
    refused = _marketing_allowed(tenant_a, patient_id)
    assert (refused.allowed, refused.code) == (False, "no_authorization")
    created = client.post("Consent", _authorization(patient_id, today)).json()
    assert _marketing_allowed(tenant_a, patient_id).allowed

    revocation = copy.deepcopy(created)
    revocation["status"] = "inactive"
    revocation["extension"][0]["extension"] += [
        {"url": "revoked-on", "valueDate": str(today)},
        {"url": "revocation-received-via", "valueCode": "mail"},
    ]
    response = client.put(f"Consent/{created['id']}", revocation)
    assert response.status_code == 200, response.content
    resource = response.json()
    assert resource["status"] == "inactive"
    assert _sub(resource, "defect") == ["revoked"]
    assert _sub(resource, "revoked-on") == [str(today)]

    refused = _marketing_allowed(tenant_a, patient_id)
    assert (refused.allowed, refused.code, refused.on) == (False, "authorization_revoked", today)
    [stored] = _stored(tenant_a)
    assert (stored.status, stored.revocation_received) == ("revoked", "mail")
    assert audit_events(tenant=tenant_a, action="authorization.revoke")
    assert client.get(f"Consent/{created['id']}").json()["status"] == "inactive"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (lambda c: c.update(id="00000000-0000-0000-0000-000000000000"), 400, "id_mismatch"),
        (lambda c: c.update(patient={"reference": "Patient/someone-else"}), 422, "patient_immutable"),
        (lambda c: c.update(status="rejected"), 422, "status_not_supported"),
        (lambda c: c.update(status="entered-in-error"), 422, "status_not_supported"),
    ],
)
def test_updates_other_than_a_revocation_are_refused(tenant_a, fhir, patient_id, today, change, status, code):
    client = fhir(ALL)
    created = client.post("Consent", _authorization(patient_id, today)).json()
    update = copy.deepcopy(created)
    change(update)
    assert_outcome(client.put(f"Consent/{created['id']}", update), status, code)
    [stored] = _stored(tenant_a)
    assert stored.status == "valid"


def test_a_revocation_dated_in_the_future_or_undone_is_refused(tenant_a, fhir, patient_id, today):
    client = fhir(ALL)
    created = client.post("Consent", _authorization(patient_id, today)).json()
    future = copy.deepcopy(created)
    future["status"] = "inactive"
    tomorrow = str(today + datetime.timedelta(days=1))
    future["extension"][0]["extension"].append({"url": "revoked-on", "valueDate": tomorrow})
    assert_outcome(client.put(f"Consent/{created['id']}", future), 400, "revoked_on_invalid")
    assert _stored(tenant_a)[0].status == "valid"

    assert client.put(f"Consent/{created['id']}", {**created, "status": "inactive"}).status_code == 200
    again = {**created, "status": "active"}
    assert_outcome(client.put(f"Consent/{created['id']}", again), 422, "reactivation_refused")


def test_a_marketing_decision_is_not_updated(tenant_a, fhir, patient_id):
    client = fhir(ALL)
    created = client.post("Consent", marketing_consent(patient_id=patient_id, provision="permit")).json()
    response = client.put(f"Consent/{created['id']}", {**created, "status": "inactive"})
    assert_outcome(response, 422, "update_not_supported")
    with tenant_context(tenant_a):
        assert list(ConsentEvent.objects.values_list("kind", flat=True)) == ["granted"]


def test_the_capability_statement_says_what_consent_does(db):
    from django.test import Client
    from django.urls import resolve

    statement = Client().get("/api/fhir/r4/metadata").json()
    [consent] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Consent"]
    interactions = {i["code"] for i in consent["interaction"]}
    assert interactions == {"create", "read", "update", "search-type"}
    assert {p["name"] for p in consent["searchParam"]} == {"patient", "category"}
    type_view = resolve("/api/fhir/r4/Consent").func.cls
    instance_view = resolve("/api/fhir/r4/Consent/1").func.cls
    served = {
        "create": hasattr(type_view, "post"),
        "search-type": hasattr(type_view, "get"),
        "read": hasattr(instance_view, "get"),
        "update": hasattr(instance_view, "put"),
        "delete": hasattr(instance_view, "delete"),
    }
    assert {name for name, yes in served.items() if yes} == interactions


def test_a_research_authorization_reads_back_as_hipaa_research(tenant_a, fhir, patient_id, today):
    consent = _authorization(patient_id, today)
    consent["policyRule"]["coding"][0]["code"] = "hipaa-research"
    consent["provision"]["purpose"] = [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}
    ]
    created = fhir(ALL).post("Consent", consent)
    assert created.status_code == 201, created.content
    resource = created.json()
    assert resource["policyRule"]["coding"][0]["code"] == "hipaa-research"
    assert resource["provision"]["purpose"][0]["code"] == "HRESCH"
    assert _sub(resource, "kind") == ["research"]
    assert _stored(tenant_a)[0].kind == "research"


def test_a_deleted_patients_consents_answer_like_none(tenant_a, fhir, patient_id, today):
    from contacts.models import Contact
    from contacts.services import contact_delete
    from healthmail.actors import Actor

    client = fhir(ALL)
    created = client.post("Consent", _authorization(patient_id, today)).json()
    with tenant_context(tenant_a):
        contact = Contact.objects.get(pk=patient_id)
    contact_delete(tenant=tenant_a, actor=Actor.system("tests"), contact=contact, reason="erasure request")
    missing = assert_outcome(client.get("Consent/00000000-0000-0000-0000-000000000000"), 404, "not_found")
    deleted = assert_outcome(client.get(f"Consent/{created['id']}"), 404, "not_found")
    assert deleted["issue"][0]["diagnostics"] == missing["issue"][0]["diagnostics"]
    assert client.get("Consent", patient=patient_id).json()["total"] == 0


def test_smart_consent_scopes_read_masked_unless_patient_read_is_granted_too(
    tenant_a, fhir, patient_id, today
):
    """system/Consent.rs carries consent:read only: a token with it alone reads consents masked and
    cannot revoke; with system/Patient.rs (which carries contacts:phi) it reads them whole."""
    import json

    from .smart import register
    from .test_smart import _fhir, _token

    created = fhir(ALL).post("Consent", _authorization(patient_id, today)).json()
    backend = register(tenant_a, scopes=["consent:read", "consent:write", "contacts:read", "contacts:phi"])

    def client(scope: str):
        response = _token(backend.form(scope=scope))
        assert response.json()["scope"] == scope, response.content
        return _fhir(response.json()["access_token"])

    path = f"/api/fhir/r4/Consent/{created['id']}"
    reader = client("system/Consent.rs")
    masked = reader.get(path).json()
    assert masked["meta"]["security"][0]["code"] == "REDACTED"
    assert "dateTime" not in masked
    update = json.dumps({**created, "status": "inactive"})
    assert_outcome(reader.put(path, update, content_type="application/fhir+json"), 403)
    whole = client("system/Consent.rs system/Patient.rs").get(path).json()
    assert whole["dateTime"] == str(today - datetime.timedelta(days=30))
    revoked = client("system/Consent.u").put(path, update, content_type="application/fhir+json")
    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["resourceType"] == "OperationOutcome"  # no consent:read: an outcome only
    assert _stored(tenant_a)[0].status == "revoked"

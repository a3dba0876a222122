"""The FHIR views answer at /fhir/r4/ (the base the EHR standards name) as at /api/fhir/r4/, with the
same middleware around them: OperationOutcome errors (also those made before any view), key
authentication, rate limits, Cache-Control: no-store, request logs by route pattern. Every URL the
server gives out names the canonical base /api/fhir/r4/. Outages (503): tests/outages walk every
route, the alias's included."""

from __future__ import annotations

import logging

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from .conftest import ALIAS, BASE, assert_outcome
from .examples import MRN_SYSTEM, us_patient

pytestmark = pytest.mark.django_db
WRITER = ["contacts:write", "contacts:read", "contacts:phi"]
CANONICAL = f"http://testserver{BASE}"


def _no_store(response) -> bool:
    return "no-store" in [part.strip() for part in response.get("Cache-Control", "").split(",")]


def test_the_alias_serves_the_same_views_and_names_the_canonical_base(fhir):
    client = fhir(WRITER, base=ALIAS)
    statement = CapabilityStatement.model_validate(client.get("metadata").json())
    assert statement.implementation.url == CANONICAL
    discovery = client.client.get(ALIAS + ".well-known/smart-configuration", HTTP_ACCEPT="application/json")
    assert discovery.json()["token_endpoint"] == "http://testserver/api/oauth/token"

    created = client.post("Patient", us_patient())
    assert created.status_code == 201, created.content
    patient_id = created.json()["id"]
    assert created["Location"] == f"{CANONICAL}Patient/{patient_id}"
    found = client.get("Patient", identifier=f"{MRN_SYSTEM}|12345").json()
    assert found["entry"][0]["fullUrl"] == f"{CANONICAL}Patient/{patient_id}"
    assert client.get(f"Patient/{patient_id}").json()["id"] == patient_id
    updated = client.put(f"Patient/{patient_id}", {**us_patient(), "id": patient_id, "gender": "other"})
    assert updated.status_code == 200, updated.content
    assert fhir(WRITER).get(f"Patient/{patient_id}").json()["gender"] == "other"  # one contact, both bases


def test_errors_under_the_alias_are_operation_outcomes_with_the_same_headers(fhir, settings):
    client = fhir(WRITER, base=ALIAS)
    anonymous = fhir(key="hm_000000000000_wrong", base=ALIAS)
    reader = fhir(["contacts:read"], base=ALIAS)
    answers = {
        "unknown url": (client.get("Observation"), 404, "not_found"),
        "unknown id": (client.get("Patient/00000000-0000-0000-0000-000000000000"), 404, None),
        "bad key": (anonymous.get("Patient", identifier="a|b"), 401, "authentication_failed"),
        "scope": (reader.post("Patient", us_patient()), 403, "permission_denied"),
        "invalid": (client.post("Patient", {"resourceType": "Patient", "gender": 1}), 422, None),
        "not json": (client.post("Patient", "{not json"), 400, "malformed_request"),
        "method": (client.client.delete(ALIAS + "Patient", **client.headers), 405, None),
    }
    for name, (response, status, code) in answers.items():
        assert_outcome(response, status, code)
        assert _no_store(response), name
        assert response.has_header("X-Request-ID"), name
    assert answers["unknown id"][0].has_header("RateLimit-Remaining")  # counted once the key is in

    settings.REQUEST_BODY_MAX_BYTES = 64  # answered by middleware before any view
    body = assert_outcome(client.post("Patient", us_patient()), 413, "body_too_large")
    assert body["issue"][0]["code"] == "too-costly"


def test_the_alias_shares_the_keys_rate_limit(fhir, issue_key, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "3/min"}}
    key = issue_key(scopes=["contacts:read"])
    client, alias = fhir(key=key), fhir(key=key, base=ALIAS)  # the same key through both bases
    statuses = [
        client.get("Patient/00000000-0000-0000-0000-000000000000").status_code,
        alias.get("Patient/00000000-0000-0000-0000-000000000000").status_code,
        client.get("Patient/00000000-0000-0000-0000-000000000000").status_code,
    ]
    assert statuses == [404, 404, 404]
    limited = alias.get("Patient/00000000-0000-0000-0000-000000000000")
    body = assert_outcome(limited, 429, "rate_limited")
    assert body["issue"][0]["code"] == "throttled"
    assert limited["Retry-After"] == limited["RateLimit-Reset"]
    assert limited["RateLimit-Remaining"] == "0"


def test_requests_under_the_alias_are_logged_by_route_pattern(fhir, caplog):
    caplog.set_level(logging.INFO, logger="healthmail.request")
    client = fhir(WRITER, base=ALIAS)
    patient_id = client.post("Patient", us_patient()).json()["id"]
    client.get(f"Patient/{patient_id}")
    [logged] = [r for r in caplog.records if r.getMessage() == "request" and r.method == "GET"]
    assert logged.route == "/fhir/r4/Patient/<str:resource_id>"
    assert logged.status == 200
    assert patient_id not in "".join(str(vars(r)) for r in caplog.records)

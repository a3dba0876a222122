"""FHIR Consent → a marketing topic grant or revoke through the consent service, with evidence."""

from __future__ import annotations

import pytest

from consent.models import ConsentEvent
from healthmail.tenants.context import tenant_context

from .conftest import assert_outcome
from .examples import CONSENT_EXAMPLE_BASIC, marketing_consent, us_patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def patient_id(fhir):
    return (
        fhir(["contacts:write", "contacts:read", "contacts:phi"]).post("Patient", us_patient()).json()["id"]
    )


def test_permit_then_deny_grant_and_revoke_the_topic(tenant_a, fhir, patient_id):
    client = fhir(["consent:write"])
    granted = client.post("Consent", marketing_consent(patient_id=patient_id, provision="permit"))
    assert granted.status_code == 201, granted.content
    revoked = client.post("Consent", marketing_consent(patient_id=patient_id, provision="deny"))
    assert revoked.status_code == 201
    with tenant_context(tenant_a):
        events = list(ConsentEvent.objects.order_by("id").values_list("kind", "source", "topic__key"))
    assert events == [
        (ConsentEvent.Kind.GRANTED, "api", "marketing_newsletters"),
        (ConsentEvent.Kind.REVOKED, "api", "marketing_newsletters"),
    ]


def test_the_official_basic_example_is_refused_for_want_of_a_topic(fhir, patient_id):
    example = {**CONSENT_EXAMPLE_BASIC, "patient": {"reference": f"Patient/{patient_id}"}}
    assert_outcome(fhir(["consent:write"]).post("Consent", example), 422, "topic_required")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"dateTime": "2026-12-01"}, "validation_failed"),
        ({"status": "proposed"}, "status_not_active"),
        ({"provision": {}}, "provision_required"),
        ({"patient": {"reference": "Patient/00000000-0000-0000-0000-000000000000"}}, "NotFound"),
    ],
)
def test_refusals_record_nothing(tenant_a, fhir, patient_id, change, code):
    consent = {**marketing_consent(patient_id=patient_id, provision="permit"), **change}
    assert_outcome(fhir(["consent:write"]).post("Consent", consent), {"NotFound": 404}.get(code, 422), code)
    with tenant_context(tenant_a):
        assert not ConsentEvent.objects.exists()


def test_a_foreign_tenants_patient_is_not_found(tenant_b, fhir, patient_id):
    response = fhir(["consent:write"], tenant=tenant_b).post(
        "Consent", marketing_consent(patient_id=patient_id, provision="permit")
    )
    assert_outcome(response, 404)

"""BOLA harness (RELIABILITY S1), foundation: every OpenAPI operation must be listed below, and every
operation that takes an object id answers a foreign tenant's id exactly like a non-existent one.

A new route fails `test_every_operation_is_in_the_matrix` until it is added to OPERATIONS with the
scopes it declares and, if its path carries an id, how to make a foreign tenant's object for it.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator

from healthmail.accounts.api_keys import SCOPES
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem
from tests.api.objects import (
    Operation,
    api_key_id,
    authorization_id,
    campaign_id,
    campaign_in,
    contact_id,
    journey_id,
    message_id,
    own_contact_body,
    removal_reason,
    segment_id,
    suppression_id,
    template_content,
    template_id,
    template_version_id,
    template_with_spanish_id,
    webhook_delivery_id,
    webhook_endpoint_id,
)

pytestmark = pytest.mark.django_db

PRODUCT_URLCONF = "healthmail.urls"
TEST_URLCONF = "tests.api.urls"


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/api/v1/me"): Operation(scopes=[]),
    ("GET", "/api/v1/segments"): Operation(scopes=["segments:read"]),
    ("POST", "/api/v1/segments"): Operation(scopes=["segments:write"]),
    ("POST", "/api/v1/segments/count"): Operation(scopes=["segments:read"]),
    ("GET", "/api/v1/segments/{segment_id}"): Operation(scopes=["segments:read"], make_object=segment_id),
    ("PATCH", "/api/v1/segments/{segment_id}"): Operation(scopes=["segments:write"], make_object=segment_id),
    ("POST", "/api/v1/segments/{segment_id}/count"): Operation(
        scopes=["segments:read"], make_object=segment_id
    ),
    ("POST", "/api/v1/events"): Operation(scopes=["events:write"]),
    ("POST", "/api/v1/consent/events"): Operation(scopes=["consent:write"]),
    ("POST", "/api/v1/consent/waivers"): Operation(scopes=["consent:write"]),
    ("POST", "/api/v1/suppressions"): Operation(scopes=["consent:write"]),
    ("POST", "/api/v1/suppressions/{suppression_id}/remove"): Operation(
        scopes=["consent:write"], make_object=suppression_id, make_body=removal_reason
    ),
    ("GET", "/api/v1/contacts/{contact_id}/consent"): Operation(
        scopes=["consent:read"], make_object=contact_id
    ),
    ("GET", "/api/v1/signing-keys"): Operation(scopes=[]),
    ("POST", "/api/v1/authorizations"): Operation(scopes=["consent:write"]),
    ("GET", "/api/v1/authorizations/{authorization_id}"): Operation(
        scopes=["consent:read"], make_object=authorization_id
    ),
    ("POST", "/api/v1/authorizations/{authorization_id}/revoke"): Operation(
        scopes=["consent:write"], make_object=authorization_id
    ),
    ("POST", "/api/v1/authorizations/{authorization_id}/end-event"): Operation(
        scopes=["consent:write"], make_object=authorization_id
    ),
    ("GET", "/api/v1/contacts/{contact_id}/authorizations"): Operation(
        scopes=["consent:read"], make_object=contact_id
    ),
    ("GET", "/api/v1/contacts"): Operation(scopes=["contacts:read"]),
    ("POST", "/api/v1/contacts"): Operation(scopes=["contacts:write"]),
    ("POST", "/api/v1/contacts/bulk"): Operation(scopes=["contacts:write"]),
    ("GET", "/api/v1/contacts/{contact_id}"): Operation(scopes=["contacts:read"], make_object=contact_id),
    ("DELETE", "/api/v1/contacts/{contact_id}"): Operation(scopes=["contacts:write"], make_object=contact_id),
    ("GET", "/api/v1/webhooks"): Operation(scopes=["webhooks:manage"]),
    ("POST", "/api/v1/webhooks"): Operation(scopes=["webhooks:manage"]),
    ("GET", "/api/v1/webhooks/{endpoint_id}"): Operation(
        scopes=["webhooks:manage"], make_object=webhook_endpoint_id
    ),
    ("DELETE", "/api/v1/webhooks/{endpoint_id}"): Operation(
        scopes=["webhooks:manage"], make_object=webhook_endpoint_id
    ),
    ("PATCH", "/api/v1/webhooks/{endpoint_id}"): Operation(
        scopes=["webhooks:manage"], make_object=webhook_endpoint_id
    ),
    ("POST", "/api/v1/webhooks/{endpoint_id}/ping"): Operation(
        scopes=["webhooks:manage"], make_object=webhook_endpoint_id
    ),
    ("POST", "/api/v1/webhooks/{endpoint_id}/rotate-secret"): Operation(
        scopes=["webhooks:manage"], make_object=webhook_endpoint_id
    ),
    ("POST", "/api/v1/webhook-deliveries/{delivery_id}/redeliver"): Operation(
        scopes=["webhooks:manage"], make_object=webhook_delivery_id
    ),
    ("GET", "/api/v1/webhooks/{endpoint_id}/deliveries"): Operation(
        scopes=["webhooks:manage"], make_object=webhook_endpoint_id
    ),
    ("GET", "/api/v1/messages"): Operation(scopes=["messages:read"]),
    ("GET", "/api/v1/templates"): Operation(scopes=["campaigns:read"]),
    ("GET", "/api/v1/templates/{template_id}"): Operation(scopes=["campaigns:read"], make_object=template_id),
    ("POST", "/api/v1/templates"): Operation(scopes=["templates:write"]),
    ("PATCH", "/api/v1/templates/{template_id}"): Operation(
        scopes=["templates:write"], make_object=template_id, make_body=template_content
    ),
    ("DELETE", "/api/v1/templates/{template_id}"): Operation(
        scopes=["templates:write"], make_object=template_id
    ),
    ("DELETE", "/api/v1/templates/{template_id}/languages/{language}"): Operation(
        scopes=["templates:write"], make_object=template_with_spanish_id, path_values=(("language", "es"),)
    ),
    ("GET", "/api/v1/templates/{template_id}/versions"): Operation(
        scopes=["campaigns:read"], make_object=template_id
    ),
    ("POST", "/api/v1/templates/{template_id}/versions"): Operation(
        scopes=["templates:write"], make_object=template_id
    ),
    ("GET", "/api/v1/templates/{template_id}/preview"): Operation(
        scopes=["campaigns:read"], make_object=template_id
    ),
    ("POST", "/api/v1/templates/{template_id}/preview"): Operation(
        scopes=["campaigns:read", "contacts:phi"], make_object=template_id, make_body=own_contact_body
    ),
    ("POST", "/api/v1/template-versions/{version_id}/preview"): Operation(
        scopes=["campaigns:read", "contacts:phi"],
        make_object=template_version_id,
        make_body=own_contact_body,
    ),
    ("GET", "/api/v1/template-versions/{version_id}"): Operation(
        scopes=["campaigns:read"], make_object=template_version_id
    ),
    ("GET", "/api/v1/template-versions/{version_id}/preview"): Operation(
        scopes=["campaigns:read"], make_object=template_version_id
    ),
    ("GET", "/api/v1/campaigns"): Operation(scopes=["campaigns:read"]),
    ("GET", "/api/v1/campaigns/{campaign_id}"): Operation(scopes=["campaigns:read"], make_object=campaign_id),
    ("PATCH", "/api/v1/campaigns/{campaign_id}"): Operation(
        scopes=["campaigns:write"],
        make_object=campaign_id,
        make_body=lambda tenant, _: {"name": f"Renamed {uuid.uuid4().hex[:6]}"},
    ),
    ("POST", "/api/v1/campaigns"): Operation(scopes=["campaigns:write"]),
    ("POST", "/api/v1/campaigns/{campaign_id}/unschedule"): Operation(
        scopes=["campaigns:write"], make_object=lambda tenant, _: campaign_in(tenant, "scheduled")
    ),
    ("POST", "/api/v1/campaigns/{campaign_id}/cancel"): Operation(
        scopes=["campaigns:write"], make_object=campaign_id
    ),
    ("POST", "/api/v1/campaigns/{campaign_id}/submit"): Operation(
        scopes=["campaigns:write"], make_object=lambda tenant, _: campaign_in(tenant, "draft")
    ),
    ("POST", "/api/v1/campaigns/{campaign_id}/withdraw"): Operation(
        scopes=["campaigns:write"], make_object=lambda tenant, _: campaign_in(tenant, "in_review")
    ),
    ("POST", "/api/v1/campaigns/{campaign_id}/schedule"): Operation(
        scopes=["campaigns:write"],
        make_object=lambda tenant, _: campaign_in(tenant, "approved"),
        make_body=lambda tenant, _: {"confirm_empty": True},
    ),
    ("POST", "/api/v1/campaigns/{campaign_id}/pause"): Operation(
        scopes=["campaigns:write"], make_object=lambda tenant, _: campaign_in(tenant, "sending")
    ),
    ("POST", "/api/v1/campaigns/{campaign_id}/resume"): Operation(
        scopes=["campaigns:write"], make_object=lambda tenant, _: campaign_in(tenant, "paused")
    ),
    ("GET", "/api/v1/campaigns/{campaign_id}/report"): Operation(
        scopes=["campaigns:report"], make_object=campaign_id
    ),
    ("POST", "/api/v1/messages"): Operation(scopes=["messages:send"]),
    ("POST", "/api/v1/messages/batch"): Operation(scopes=["messages:send"]),
    ("GET", "/api/v1/messages/{message_id}"): Operation(scopes=["messages:read"], make_object=message_id),
    ("GET", "/api/v1/journeys"): Operation(scopes=["journeys:read"]),
    ("POST", "/api/v1/journeys"): Operation(scopes=["journeys:write"]),
    ("GET", "/api/v1/journeys/{journey_id}"): Operation(scopes=["journeys:read"], make_object=journey_id),
    ("POST", "/api/v1/journeys/{journey_id}/enrolments"): Operation(
        scopes=["journeys:write"], make_object=journey_id, make_body=own_contact_body
    ),
    ("POST", "/api/v1/journeys/{journey_id}/removals"): Operation(
        scopes=["journeys:write"], make_object=journey_id, make_body=own_contact_body
    ),
    ("GET", "/api/v1/contacts/{contact_id}/journeys"): Operation(
        scopes=["journeys:read"], make_object=contact_id
    ),
}

# The test-only routes (tests/api/urls.py) keep the object-id half of the harness exercised until
# the product has object routes of its own.
TEST_OPERATIONS: dict[tuple[str, str], Operation] = {
    **OPERATIONS,
    ("POST", "/api/v1/_test/notes"): Operation(scopes=["events:write"]),
    ("GET", "/api/v1/_test/api-keys/{key_id}"): Operation(scopes=[], make_object=api_key_id),
    ("GET", "/api/v1/_test/undeclared"): Operation(scopes=None),
}

MATRICES = {PRODUCT_URLCONF: OPERATIONS, TEST_URLCONF: TEST_OPERATIONS}

# Reads of one object that are audited, as every write is: those that say something about a person,
# and the campaign report (recorded as an export). A read left out here shows no person's data (a
# campaign's settings, a template, a journey's counts through the disclosure policy, a webhook).
AUDITED_READS = {
    ("GET", "/api/v1/contacts/{contact_id}"),
    ("GET", "/api/v1/contacts/{contact_id}/consent"),
    ("GET", "/api/v1/contacts/{contact_id}/authorizations"),
    ("GET", "/api/v1/contacts/{contact_id}/journeys"),
    ("GET", "/api/v1/authorizations/{authorization_id}"),
    ("GET", "/api/v1/messages/{message_id}"),
    ("GET", "/api/v1/campaigns/{campaign_id}/report"),
}
# POSTs that leave no audit event here, and why.
NOT_AUDITED = {
    # The matrix's contact is in no journey: a removal that changes nothing records nothing
    # (tests/journeys/test_api.py: a removal that takes someone out is audited as journeys.remove).
    ("POST", "/api/v1/journeys/{journey_id}/removals"),
    # A count, not a write or a person's data: an aggregate through the disclosure policy, which
    # keeps its own query audit against differencing (segmentation/services.py).
    ("POST", "/api/v1/segments/{segment_id}/count"),
}


def schema_operations(urlconf: str) -> set[tuple[str, str]]:
    schema = SchemaGenerator(urlconf=urlconf).get_schema(request=None, public=True)
    return {(method.upper(), path) for path, item in schema["paths"].items() for method in item}


def _fill(path: str, object_id, path_values: tuple[tuple[str, str], ...] = ()) -> str:
    for name, value in path_values:
        path = path.replace("{" + name + "}", value)
    return re.sub(r"\{[^}]+\}", str(object_id), path)


@pytest.mark.parametrize("urlconf", list(MATRICES))
def test_every_operation_is_in_the_matrix(urlconf):
    generated = schema_operations(urlconf)
    listed = set(MATRICES[urlconf])
    assert not generated - listed, f"add these operations to the BOLA matrix: {sorted(generated - listed)}"
    assert not listed - generated, (
        f"the matrix lists operations that no longer exist: {sorted(listed - generated)}"
    )


@pytest.mark.parametrize("urlconf", list(MATRICES))
def test_matrix_states_the_scopes_each_view_declares(urlconf):
    for (method, path), operation in MATRICES[urlconf].items():
        view = resolve(_fill(path, uuid.uuid4()), urlconf=urlconf).func.cls
        assert getattr(view, "required_scopes", {}).get(method) == operation.scopes, (method, path)


def _key_creator(tenant):
    from healthmail.accounts.roles import Role
    from tests.factories import MembershipFactory

    return MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN).user


def _by_the_key(tenant, client) -> list:
    """The audit events the client's key is the actor of, but for its first use (`api_key.use`), which
    any call may record."""
    from tests.api.conftest import audit_events

    prefix = client.headers["HTTP_AUTHORIZATION"].removeprefix("Bearer ").split("_")[1]
    events = audit_events(tenant=tenant, actor_type="api_key", actor_id=prefix)
    return [event for event in events if event.action != "api_key.use"]


def _object_cases():
    for urlconf, matrix in MATRICES.items():
        for (method, path), operation in matrix.items():
            if "{" in path:
                yield pytest.param(urlconf, method, path, operation, id=f"{method} {path}")


@pytest.mark.parametrize(("urlconf", "method", "path", "operation"), list(_object_cases()))
@pytest.mark.parametrize("persona", ["all_scopes", "declared_scopes_only"])
def test_foreign_and_missing_ids_answer_the_same_404(
    settings, issue_key, api, tenant_a, tenant_b, urlconf, method, path, operation, persona
):
    settings.ROOT_URLCONF = urlconf
    scopes = list(SCOPES) if persona == "all_scopes" else (operation.scopes or ["contacts:read"])
    # A key a person created: some writes (campaigns) need a person answerable for them.
    client = api(issue_key(tenant=tenant_a, scopes=scopes, by=_key_creator(tenant_a)))

    def call(object_id):
        body = json.dumps(operation.make_body(tenant_a, issue_key)) if operation.make_body else ""
        return client.generic(method, _fill(path, object_id, operation.path_values), body)

    own_object = operation.make_object(tenant_a, issue_key)
    recorded = len(_by_the_key(tenant_a, client))
    own = call(own_object)
    assert 200 <= own.status_code < 300, "the route must work for the caller's own object"
    audited = (method != "GET" and (method, path) not in NOT_AUDITED) or (
        method,
        path,
    ) in AUDITED_READS
    if urlconf == PRODUCT_URLCONF and audited:
        # Every write, and every read of a person's data, leaves an audit event naming the key.
        assert len(_by_the_key(tenant_a, client)) > recorded, f"{method} {path} left no audit event"

    foreign = call(operation.make_object(tenant_b, issue_key))
    missing = call(uuid.uuid4())
    foreign_body, missing_body = assert_problem(foreign, 404), assert_problem(missing, 404)
    assert {**foreign_body, "request_id": ""} == {**missing_body, "request_id": ""}
    assert foreign.content.replace(foreign["X-Request-ID"].encode(), b"") == missing.content.replace(
        missing["X-Request-ID"].encode(), b""
    )


# --- FHIR (/api/fhir/r4/, also served at /fhir/r4/): not in the OpenAPI schema (a FHIR client reads
# the CapabilityStatement), so its routes are listed here from the URL patterns; errors are
# OperationOutcomes, not problems.
FHIR_BASE = "/api/fhir/r4/"
FHIR_BASES = (FHIR_BASE, "/fhir/r4/")


def _patient_update(tenant, issue_key, object_id) -> dict:
    """A FHIR update body: a Patient carrying the id of the URL it is sent to."""
    return {
        "resourceType": "Patient",
        "id": str(object_id),
        "telecom": [{"system": "email", "value": f"bola.{uuid.uuid4().hex[:8]}@example.org"}],
    }


def _fhir_message_id(tenant, issue_key) -> uuid.UUID:
    return message_id(tenant, issue_key)


def _fhir_revocation(tenant, issue_key, object_id) -> dict:
    """An update revoking the authorization `object_id` of the caller's tenant (or naming nobody)."""
    from consent.models import Authorization

    with tenant_context(tenant):
        contact_id = Authorization.objects.filter(pk=object_id).values_list("contact_id", flat=True).first()
    return {
        "resourceType": "Consent",
        "id": str(object_id),
        "status": "inactive",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "64292-6"}]}],
        "patient": {"reference": f"Patient/{contact_id or uuid.uuid4()}"},
    }


FHIR_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "metadata"): Operation(scopes=None),  # open: the CapabilityStatement
    ("GET", ".well-known/smart-configuration"): Operation(scopes=None),  # open: SMART discovery
    ("GET", "Patient"): Operation(scopes=["contacts:read"]),
    ("POST", "Patient"): Operation(scopes=["contacts:write"]),
    ("GET", "Patient/{resource_id}"): Operation(scopes=["contacts:read"], make_object=contact_id),
    ("PUT", "Patient/{resource_id}"): Operation(
        scopes=["contacts:write"], make_object=contact_id, make_body=_patient_update
    ),
    ("POST", "CommunicationRequest"): Operation(scopes=["messages:send"]),
    ("GET", "Communication"): Operation(scopes=["messages:read"]),
    ("GET", "Communication/{resource_id}"): Operation(scopes=["messages:read"], make_object=_fhir_message_id),
    ("POST", "Consent"): Operation(scopes=["consent:write"]),
    ("GET", "Consent"): Operation(scopes=["consent:read"]),
    ("GET", "Consent/{resource_id}"): Operation(scopes=["consent:read"], make_object=authorization_id),
    ("PUT", "Consent/{resource_id}"): Operation(
        scopes=["consent:write"], make_object=authorization_id, make_body=_fhir_revocation
    ),
}


def _fhir_routes() -> set[tuple[str, str]]:
    from fhir_api import urls as fhir_urls

    routes = set()
    for pattern in fhir_urls.urlpatterns:
        view = getattr(pattern.callback, "cls", None)
        if view is None:  # the OperationOutcome catch-all
            continue
        path = str(pattern.pattern).replace("<str:resource_id>", "{resource_id}")
        routes |= {
            (method.upper(), path)
            for method in ("get", "post", "put", "patch", "delete")
            if hasattr(view, method)
        }
    return routes


def test_every_fhir_operation_is_in_the_matrix():
    assert _fhir_routes() == set(FHIR_OPERATIONS)
    for (method, path), operation in FHIR_OPERATIONS.items():
        view = resolve(FHIR_BASE + _fill(path, uuid.uuid4())).func.cls
        assert getattr(view, "required_scopes", {}).get(method) == operation.scopes, (method, path)


def _fhir_object_cases():
    for (method, path), operation in FHIR_OPERATIONS.items():
        if "{" in path:
            yield pytest.param(method, path, operation, id=f"FHIR {method} {path}")


@pytest.mark.parametrize(("method", "path", "operation"), list(_fhir_object_cases()))
@pytest.mark.parametrize("persona", ["all_scopes", "declared_scopes_only"])
@pytest.mark.parametrize("base", FHIR_BASES)
def test_fhir_foreign_and_missing_ids_answer_the_same_404(
    issue_key, api, tenant_a, tenant_b, method, path, operation, persona, base
):
    scopes = list(SCOPES) if persona == "all_scopes" else operation.scopes
    client = api(issue_key(tenant=tenant_a, scopes=scopes))

    def call(object_id):
        body = json.dumps(operation.make_body(tenant_a, issue_key, object_id)) if operation.make_body else ""
        return client.generic(
            method, base + _fill(path, object_id), body, content_type="application/fhir+json"
        )

    own = call(operation.make_object(tenant_a, issue_key))
    assert own.status_code == 200, own.content
    foreign = call(operation.make_object(tenant_b, issue_key))
    missing = call(uuid.uuid4())
    assert foreign.status_code == missing.status_code == 404
    assert foreign["Content-Type"] == missing["Content-Type"] == "application/fhir+json"
    assert {**foreign.json(), "id": ""} == {**missing.json(), "id": ""}
    assert foreign.json()["resourceType"] == "OperationOutcome"

"""FHIR test helpers: a client speaking application/fhir+json with an API key."""

from __future__ import annotations

import json

import pytest

FHIR = "application/fhir+json"
BASE = "/api/fhir/r4/"  # canonical; the same views answer at ALIAS
ALIAS = "/fhir/r4/"


@pytest.fixture
def fhir(issue_key):
    """`fhir(scopes, tenant=None, base=BASE)` → a client whose get/post/put speak FHIR JSON with a
    fresh key."""
    from django.test import Client

    class FhirClient:
        def __init__(self, key: str | None, base: str):
            self.base = base
            self.client = Client()
            self.headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
            self.headers["HTTP_ACCEPT"] = FHIR

        def get(self, path, **params):
            return self.client.get(self.base + path, params, **self.headers)

        def post(self, path, resource, content_type=FHIR, **headers):
            body = resource if isinstance(resource, str | bytes) else json.dumps(resource)
            headers = {**self.headers, **headers}
            return self.client.post(self.base + path, body, content_type=content_type, **headers)

        def put(self, path, resource, content_type=FHIR, **headers):
            body = resource if isinstance(resource, str | bytes) else json.dumps(resource)
            headers = {**self.headers, **headers}
            return self.client.put(self.base + path, body, content_type=content_type, **headers)

    def make(scopes=None, tenant=None, key: str | None = None, base: str = BASE):
        return FhirClient(key or issue_key(scopes=scopes, tenant=tenant), base)

    return make


def assert_outcome(response, status: int, code: str | None = None) -> dict:
    """An OperationOutcome with `status`, valid for the FHIR model, its first issue saying `code`."""
    from fhir.resources.R4B.operationoutcome import OperationOutcome

    assert response.status_code == status, response.content
    assert response["Content-Type"] == FHIR
    body = response.json()
    OperationOutcome.model_validate(body)
    assert body["issue"], body
    if code is not None:
        assert body["issue"][0]["details"]["text"] == code, body
    for leak in ("Traceback", 'File "', "django.", "psycopg"):
        assert leak not in response.content.decode()
    return body

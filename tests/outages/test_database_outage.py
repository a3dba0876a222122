"""PostgreSQL unreachable: every route, API or web, signed in or not, answers 503 with Retry-After
(problem+json under /api/, an OperationOutcome under /api/fhir/r4/ and /fhir/r4/, a plain page
elsewhere) or an answer that needed no database; never 500. The signed-in web client fails inside
middleware (the session is read before any view runs)."""

from __future__ import annotations

import uuid

import pytest
import requests
import schemathesis
from django.conf import settings
from schemathesis.core.transport import Response

from fhir_api.middleware import FHIR_BASES
from healthmail.accounts.api_keys import SCOPES, api_key_create
from healthmail.actors import Actor
from healthmail.api_paths import is_api_path
from tests.api.schema_support import CONFIG, served_schema
from tests.conftest import sign_in
from tests.factories import BaaFactory, MembershipFactory, TenantFactory

from .conftest import every_route
from .support import database_unreachable

pytestmark = pytest.mark.usefixtures("committed_db")

# Routes that answer without the database: a redirect to a static file, the metrics text, and the
# health check (which itself reports the database as down with a 503).
NEEDS_NO_DATABASE = {"/favicon.ico", "/metrics"}


def _tenant():
    slug = f"outage-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Outage {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


def assert_outage(response, path: str) -> None:
    assert response.status_code == 503, (path, response.status_code)
    assert response.get("Retry-After") == str(settings.OUTAGE_RETRY_AFTER_SECONDS), path
    if path.startswith(FHIR_BASES):  # FHIR clients read OperationOutcomes, never problem+json
        assert response["Content-Type"] == "application/fhir+json", path
        body = response.json()
        assert body["resourceType"] == "OperationOutcome", path
        assert body["issue"][0]["code"] == "transient", path
        assert body["issue"][0]["details"]["text"] == "service_unavailable", path
    elif is_api_path(path):
        assert response["Content-Type"] == "application/problem+json", path
        body = response.json()
        assert body["status"] == 503
        assert body["code"] == "service_unavailable"
    elif path != "/healthz":
        assert response["Content-Type"].startswith("text/html"), path
        assert b"unavailable" in response.content


def _as_documented(schema, method: str, path: str, response) -> bool:
    """Whether `response` is an answer the OpenAPI schema documents for the operation at `path`: its
    status with the Retry-After header, and its body (validated by schemathesis). False when the
    schema has no such operation."""
    operation = schema.find_operation_by_path(method.upper(), path)
    if operation is None:
        return False
    documented = operation.definition.raw["responses"].get(str(response.status_code))
    assert documented is not None, f"{method.upper()} {path}: {response.status_code} is not in the schema"
    assert "Retry-After" in documented.get("headers", {}), f"{method.upper()} {path}: no Retry-After"
    request = requests.Request(method.upper(), f"http://testserver{path}").prepare()
    headers = {name: [value] for name, value in response.headers.items()}
    answer = Response(response.status_code, headers, response.content, request, elapsed=0.0, verify=False)
    schema.validate_response(operation, answer)  # raises naming what the body breaks
    return True


def test_every_api_route_answers_503_problem_json(raw_client):
    tenant = _tenant()
    key = api_key_create(actor=Actor.system("tests"), tenant=tenant, name="Outage", scopes=list(SCOPES))
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key.plaintext}"}
    routes = [route for route in every_route() if is_api_path(route)]
    assert len(routes) > 20
    # The schema says so too (a generated SDK knows the 503 and its Retry-After): every operation's
    # outage answer is one its schema documents.
    schema = schemathesis.openapi.from_dict(served_schema(), config=CONFIG)
    documented = 0
    with database_unreachable():
        for path in routes:
            for method in ("get", "post"):
                response = getattr(raw_client, method)(path, content_type="application/json", **headers)
                assert_outage(response, path)
                documented += _as_documented(schema, method, path, response)
    assert documented > 40


def test_every_web_route_answers_503_to_a_signed_in_user(raw_client):
    tenant = _tenant()
    membership = MembershipFactory(tenant=tenant, role="owner")
    sign_in(raw_client, membership.user, tenant=tenant)
    routes = [r for r in every_route() if not is_api_path(r) and r not in NEEDS_NO_DATABASE]
    with database_unreachable():
        for path in routes:
            for method in ("get", "post"):
                assert_outage(getattr(raw_client, method)(path), path)


def test_anonymous_visitors_get_503_or_an_answer_without_the_database(raw_client):
    with database_unreachable():
        for path in every_route():
            for method in ("get", "post"):
                response = getattr(raw_client, method)(path)
                if response.status_code >= 500:
                    assert_outage(response, path)


def test_service_resumes_when_the_database_returns(raw_client):
    with database_unreachable():
        assert_outage(raw_client.get("/healthz"), "/healthz")
    response = raw_client.get("/healthz")
    assert response.json()["database"] == "ok"


def test_an_outage_inside_an_api_view_is_a_503_problem():
    """Errors inside DRF views go through the API's handler, not handler500: same answer."""
    from django.db import OperationalError, connections

    from healthmail.api.errors import problem_exception_handler

    with database_unreachable(), pytest.raises(OperationalError) as raised:
        connections["default"].ensure_connection()
    response = problem_exception_handler(raised.value, {})
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.OUTAGE_RETRY_AFTER_SECONDS)
    assert response.data["code"] == "service_unavailable"

"""The OpenAPI document: generated without warnings, Bearer auth and problem+json documented."""

from __future__ import annotations

import pytest
from drf_spectacular.drainage import GENERATOR_STATS, reset_generator_stats
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _schema(urlconf: str | None = None) -> dict:
    reset_generator_stats()
    schema = SchemaGenerator(urlconf=urlconf).get_schema(request=None, public=True)
    warnings, errors = dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache)
    reset_generator_stats()
    assert not warnings, warnings
    assert not errors, errors
    validate_schema(schema)
    return schema


@pytest.mark.parametrize("urlconf", [None, "tests.api.urls"])
def test_schema_generates_cleanly(urlconf):
    schema = _schema(urlconf)
    assert "/api/v1/me" in schema["paths"]


def test_bearer_scheme_is_documented_and_required():
    schema = _schema()
    scheme = schema["components"]["securitySchemes"]["ApiKeyAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    me = schema["paths"]["/api/v1/me"]["get"]
    assert me["security"] == [{"ApiKeyAuth": []}]
    assert "Required scopes: none" in me["description"]


def test_every_operation_documents_its_problem_responses():
    schema = _schema("tests.api.urls")
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert {"401", "403", "429", "500", "503"} <= set(operation["responses"]), (method, path)
            for code in ("429", "503"):  # both say when to try again (RFC 9110 §10.2.3)
                assert "Retry-After" in operation["responses"][code]["headers"], (method, path, code)
            for code, response in operation["responses"].items():
                if code[0] in "45":  # every error, 404 and 422 included, whatever the view declared
                    content = response["content"]
                    assert content == {"application/problem+json": {"schema": PROBLEM_REF}}, (
                        method,
                        path,
                        code,
                    )
    assert {"type", "title", "status", "detail", "code", "request_id"} <= set(
        schema["components"]["schemas"]["Problem"]["required"]
    )
    assert "404" in schema["paths"]["/api/v1/_test/api-keys/{key_id}"]["get"]["responses"]


def test_idempotent_post_documents_its_header_and_answers():
    post = _schema("tests.api.urls")["paths"]["/api/v1/_test/notes"]["post"]
    header = next(p for p in post["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header"
    assert {"400", "409", "413", "415", "422"} <= set(post["responses"])
    assert "Idempotent-Replayed" in post["responses"]["201"]["headers"]
    assert (
        "headers" not in post["responses"]["401"]
        or "Idempotent-Replayed" not in post["responses"]["401"]["headers"]
    )


def test_schema_and_docs_are_served_without_a_key(client):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert schema.json()["components"]["securitySchemes"]["ApiKeyAuth"]["scheme"] == "bearer"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"/api/schema/" in docs.content


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node or "allOf" in node:
        node = node["allOf"][0] if "allOf" in node else node
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_webhook_event_payloads_are_documented(tenant_a):
    """Receivers build against the schema: every event type and every key of a real payload."""
    from delivery.webhooks.services import EVENT_TYPES, payload_for
    from tests.delivery.outbox_helpers import make_message

    schema = _schema()
    deliveries = schema["paths"]["/api/v1/webhook-deliveries/{delivery_id}/redeliver"]["post"]
    delivery = _resolve(schema, deliveries["responses"]["202"]["content"]["application/json"]["schema"])
    event = _resolve(schema, delivery["properties"]["payload"])
    assert sorted(_resolve(schema, event["properties"]["event"])["enum"]) == sorted(EVENT_TYPES)
    payload = {**payload_for(make_message(tenant_a), "message.delivered"), "delivery_id": "x"}
    assert set(payload) <= set(event["properties"])
    assert set(payload["source"]) <= set(_resolve(schema, event["properties"]["source"])["properties"])


@pytest.mark.parametrize(
    "path", ["/api/v1/contacts", "/api/v1/webhooks", "/api/v1/messages", "/api/v1/segments"]
)
def test_lists_are_documented_as_the_cursor_pages_they_answer(path):
    operation = _schema()["paths"][path]["get"]
    names = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert {"cursor", "page_size"} <= set(names)
    assert (names["page_size"]["schema"]["minimum"], names["page_size"]["schema"]["maximum"]) == (1, 500)
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    page = _schema()["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert {"next", "previous", "results"} <= set(page["properties"])
    assert page["properties"]["results"]["type"] == "array"
    assert "422" in operation["responses"]


def test_created_answers_are_documented_as_201():
    paths = _schema()["paths"]
    assert {"200", "201", "202"} <= set(paths["/api/v1/events"]["post"]["responses"])
    assert set(paths["/api/v1/contacts"]["post"]["responses"]) & {"200", "201"} == {"200", "201"}


def test_rate_limit_headers_are_documented():
    headers = _schema()["paths"]["/api/v1/me"]["get"]["responses"]["200"]["headers"]
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(headers)


def test_docs_page_loads_redoc_from_our_static_files(client):
    response = client.get("/api/docs/")
    docs = response.content.decode()
    assert "https://" not in docs  # no CDN, no web fonts
    assert "http://" not in docs
    scripts = [line.split('"')[1] for line in docs.splitlines() if "<script src=" in line]
    # Served by WhiteNoise from collected static files (tests/e2e/test_api_docs.py loads them).
    assert scripts[0].startswith("/static/drf_spectacular_sidecar/redoc/")
    assert all(script.startswith("/static/") for script in scripts)
    # What Redoc itself asks of other hosts (its footer logo) the browser never requests.
    assert "default-src 'self'" in response["Content-Security-Policy"]

"""Every API error is problem+json (RFC 9457) without internals; other pages stay friendly HTML."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory, override_settings

from healthmail.api import errors
from tests.api.conftest import assert_problem, audit_events

pytestmark = pytest.mark.django_db


def test_unknown_api_url_answers_404_problem_with_or_without_key(issue_key, api):
    assert_problem(api(issue_key()).get("/api/v1/no-such-thing"), 404, "not_found")
    assert_problem(api(None).get("/api/v2/me"), 404, "not_found")
    # POST without a CSRF token: still a problem+json 404, never Django's CSRF page.
    assert_problem(api(None).post("/api/v1/no-such-thing", {"a": 1}), 404, "not_found")


def test_wrong_method_answers_405_problem_with_allow(issue_key, api):
    response = api(issue_key()).post("/api/v1/me", {})
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]
    assert "POST" not in response["Allow"]


@override_settings(REQUEST_BODY_MAX_BYTES=1000)
def test_oversized_body_answers_413_before_anything_reads_it(issue_key, api, tenant_a):
    response = api(issue_key()).post("/api/v1/me", {"padding": "x" * 2000})
    body = assert_problem(response, 413, "body_too_large")
    assert "1000 bytes" in body["detail"]
    assert "no-store" in response["Cache-Control"]  # refused above the no-store middleware
    # Refused before authentication ran: no key use recorded.
    assert not audit_events(tenant=tenant_a, action="api_key.use")


@override_settings(REQUEST_BODY_MAX_BYTES=1000)
def test_oversized_body_outside_the_api_answers_plain_413(client):
    response = client.post("/login/", {"padding": "x" * 2000})
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.urls("tests.api.urls")
def test_malformed_json_answers_400_with_a_clear_message(issue_key, api):
    response = api(issue_key()).post(
        "/api/v1/_test/notes", '{"text": "unterminated', content_type="application/json"
    )
    body = assert_problem(response, 400, "malformed_request")
    assert body["detail"] == "The request body is not valid JSON."
    assert "char" not in body["detail"]


@pytest.mark.urls("tests.api.urls")
def test_other_media_type_answers_415(issue_key, api):
    response = api(issue_key()).post(
        "/api/v1/_test/notes", "text=hello", content_type="application/x-www-form-urlencoded"
    )
    body = assert_problem(response, 415, "unsupported_media_type")
    assert "application/x-www-form-urlencoded" in body["detail"]


@pytest.mark.urls("tests.api.urls")
def test_invalid_fields_answer_422_with_errors(issue_key, api, tenant_a):
    response = api(issue_key()).post("/api/v1/_test/notes", {"text": ""})
    body = assert_problem(response, 422, "validation_failed")
    assert set(body["errors"]) == {"text"}
    assert body["errors"]["text"]
    assert not audit_events(tenant=tenant_a, action="test.note_create")


def test_rate_limit_per_key_answers_429_with_retry_after(issue_key, api):
    rest = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "2/min"}}
    first, second = api(issue_key()), api(issue_key())
    with override_settings(REST_FRAMEWORK=rest):
        assert [first.get("/api/v1/me").status_code for _ in range(2)] == [200, 200]
        response = first.get("/api/v1/me")
        assert_problem(response, 429, "rate_limited")
        assert 0 < int(response["Retry-After"]) <= 60
        # The limit is per key: another key of the same tenant is unaffected.
        assert second.get("/api/v1/me").status_code == 200


@pytest.mark.urls("tests.api.urls")
def test_unexpected_exception_answers_500_with_request_id_only_and_rolls_back(
    issue_key, api, tenant_a, caplog
):
    caplog.set_level(logging.ERROR, logger="healthmail.api")
    response = api(issue_key()).post("/api/v1/_test/notes", {"text": "secret-marker", "explode": True})
    body = assert_problem(response, 500, "server_error")
    assert set(body) == {"type", "title", "status", "detail", "code", "request_id"}
    assert "secret-marker" not in response.content.decode()
    # The handler's write (an audit row) was rolled back with the request.
    assert not audit_events(tenant=tenant_a, action="test.note_create")
    # Logged for operators: the class and the frames, not the message (which may quote data).
    logged = [r for r in caplog.records if r.getMessage() == "api.unhandled_exception"]
    assert len(logged) == 1
    assert logged[0].exception_type == "builtins.RuntimeError"
    assert "tests/api/urls.py" in logged[0].traceback
    assert "secret-marker" not in f"{logged[0].__dict__}"


def test_server_error_handler_answers_problem_under_api_and_html_elsewhere():
    factory = RequestFactory()
    api_response = errors.server_error(factory.get("/api/v1/me"))
    assert api_response.status_code == 500
    assert api_response["Content-Type"] == "application/problem+json"
    page = errors.server_error(factory.get("/campaigns/"))
    assert page.status_code == 500
    assert page["Content-Type"].startswith("text/html")
    assert "Something went wrong" in page.content.decode()


def test_permission_denied_page_is_short_html(rf):
    request = rf.get("/settings/")
    page = errors.permission_denied(request, PermissionDenied("internal reason"))
    assert page.status_code == 403
    assert page["Content-Type"].startswith("text/html")
    text = page.content.decode()
    assert "Not allowed" in text
    assert "internal reason" not in text
    assert (
        errors.permission_denied(rf.get("/api/v1/me"), PermissionDenied())["Content-Type"] == errors.PROBLEM
    )


def test_unknown_page_for_a_signed_in_person_is_friendly_html(member_client):
    client = member_client("marketer")
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    text = response.content.decode()
    assert "Page not found" in text
    assert "Traceback" not in text
    assert "urlpatterns" not in text.lower()

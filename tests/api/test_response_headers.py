"""Headers every client relies on: `Cache-Control: no-store` on anything that may carry PHI, and the
rate limit announced (RateLimit-*) before it is reached, Retry-After once it is."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from healthmail.accounts.roles import Role
from tests.api.conftest import assert_problem

pytestmark = pytest.mark.django_db


def _no_store(response) -> bool:
    return "no-store" in [part.strip() for part in response.get("Cache-Control", "").split(",")]


def test_api_answers_are_not_stored_by_any_cache(api, issue_key):
    client = api(issue_key())
    contact = client.post("/api/v1/contacts", {"email": "pat@example.org", "first_name": "Pat"})
    assert contact.status_code == 201
    answers = [
        client.get("/api/v1/contacts"),
        client.get(f"/api/v1/contacts/{contact.json()['id']}"),
        client.get("/api/v1/contacts/00000000-0000-0000-0000-000000000000"),
        api("hm_wrong_key").get("/api/v1/me"),
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 404, 401]
    assert all(_no_store(answer) for answer in answers)


def test_pages_for_signed_in_people_are_not_stored(member_client, client):
    page = member_client(Role.MARKETER).get("/contacts/")
    assert page.status_code == 200
    assert _no_store(page)


def _limit(rate: str):
    return override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": rate}}
    )


def test_rate_limit_is_announced_before_the_429(api, issue_key):
    client = api(issue_key())
    with _limit("3/min"):
        answers = [client.get("/api/v1/me") for _ in range(3)]
        refused = client.get("/api/v1/me")
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer["RateLimit-Limit"] for answer in answers] == ["3", "3", "3"]
    assert [answer["RateLimit-Remaining"] for answer in answers] == ["2", "1", "0"]
    assert [answer["RateLimit-Reset"] for answer in answers[:2]] == ["0", "0"]
    assert 0 < int(answers[2]["RateLimit-Reset"]) <= 60
    assert_problem(refused, 429, "rate_limited")
    assert refused["RateLimit-Remaining"] == "0"
    assert 0 < int(refused["RateLimit-Reset"]) <= 60
    assert 0 < int(refused["Retry-After"]) <= 60


def test_errors_after_the_rate_limit_carry_its_headers_too(api, issue_key):
    with _limit("10/min"):
        missing = api(issue_key()).get("/api/v1/contacts/00000000-0000-0000-0000-000000000000")
    assert_problem(missing, 404)
    assert missing["RateLimit-Remaining"] == "9"


def test_no_rate_limit_headers_when_no_limit_applies(api, issue_key):
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {}}):
        answer = api(issue_key()).get("/api/v1/me")
    assert answer.status_code == 200
    assert "RateLimit-Limit" not in answer

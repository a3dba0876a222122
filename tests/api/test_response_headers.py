"""Headers every client relies on: `Cache-Control: no-store` on anything that may carry PHI, and the
rate limit announced (RateLimit-*) before it is reached, Retry-After once it is."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from healthmail.accounts.roles import Role
from healthmail.api.throttling import ApiKeyRateThrottle
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


def test_api_answers_refused_before_any_view_are_not_stored_either(api, issue_key, settings):
    """A bad Host header (CommonMiddleware's 400) and an oversized body (413) are answered before
    the request reaches a view; schemathesis found the 400 without no-store."""
    client = api(issue_key())
    bad_host = client.post("/api/v1/contacts", {"email": "pat@example.org"}, HTTP_HOST="bad host!")
    settings.REQUEST_BODY_MAX_BYTES = 10
    too_large = client.post("/api/v1/contacts", {"email": "pat@example.org", "first_name": "Pat"})
    assert [bad_host.status_code, too_large.status_code] == [400, 413]
    assert _no_store(bad_host)
    assert _no_store(too_large)


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
    assert all(0 < int(answer["RateLimit-Reset"]) <= 60 for answer in answers)
    assert_problem(refused, 429, "rate_limited")
    assert refused["RateLimit-Remaining"] == "0"
    assert 0 < int(refused["RateLimit-Reset"]) <= 60
    assert refused["Retry-After"] == refused["RateLimit-Reset"]


def test_rate_limit_reset_counts_down_to_the_end_of_the_window(api, issue_key, monkeypatch):
    """RateLimit-Reset is the seconds until the oldest request leaves the window, also while requests
    remain (draft-ietf-httpapi-ratelimit-headers), and the 429's Retry-After says the same."""
    clock = [1_000_000.0]
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", staticmethod(lambda: clock[0]))
    client = api(issue_key())

    def call(after: float):
        clock[0] += after
        return client.get("/api/v1/me")

    with _limit("4/min"):
        first = call(0)  # the oldest request in the window from now on
        second = call(10)
        third = call(20.5)
        fourth = call(9)
        refused = call(15)
    assert [a.status_code for a in (first, second, third, fourth)] == [200] * 4
    assert [a["RateLimit-Remaining"] for a in (first, second, third, fourth)] == ["3", "2", "1", "0"]
    # 60 s from the first request: 60, then 50, 29.5 (rounded up), 20.5 -> 21, and 5.5 -> 6 at the 429.
    assert [a["RateLimit-Reset"] for a in (first, second, third, fourth)] == ["60", "50", "30", "21"]
    assert_problem(refused, 429, "rate_limited")
    assert refused["RateLimit-Reset"] == refused["Retry-After"] == "6"
    with _limit("4/min"):
        freed = call(6)  # the first request has left the window: the second is now the oldest
    assert freed.status_code == 200
    assert freed["RateLimit-Remaining"] == "0"
    assert freed["RateLimit-Reset"] == "10"  # 60 - (60.5 - 10)


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


def test_retry_after_survives_a_lowered_rate(api, issue_key):
    """Once the rate is lowered below what the window already holds, DRF's own wait() gives no value
    (it divides by the slots missing); the 429 still says when to retry, as RateLimit-Reset does."""
    client = api(issue_key())
    with _limit("4/min"):
        assert [client.get("/api/v1/me").status_code for _ in range(4)] == [200] * 4
    with _limit("2/min"):
        refused = client.get("/api/v1/me")
    assert_problem(refused, 429, "rate_limited")
    assert 0 < int(refused["Retry-After"]) <= 60
    assert refused["Retry-After"] == refused["RateLimit-Reset"]

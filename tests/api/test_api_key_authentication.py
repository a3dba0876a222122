"""API keys: hashed at rest, every refusal a non-leaking 401 problem and an audit event (issue item 6)."""

from __future__ import annotations

import pytest
from django.db import connection

from audit.models import AuditEvent
from healthmail.accounts.api_keys import api_key_revoke
from healthmail.accounts.models import ApiKey
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from tests.api.conftest import assert_problem, audit_events, days_ago

pytestmark = pytest.mark.django_db


def _row_as_text(api_key_prefix: str, tenant) -> str:
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(
            "SELECT row_to_json(k)::text FROM accounts_apikey k WHERE prefix = %s", [api_key_prefix]
        )
        return cursor.fetchone()[0]


def test_only_a_hash_of_the_secret_is_stored(issue_key, tenant_a):
    plaintext = issue_key(scopes=["contacts:read"])
    _, prefix, secret = plaintext.split("_", 2)
    row = _row_as_text(prefix, tenant_a)
    assert secret not in row
    assert plaintext not in row
    with tenant_context(tenant_a):
        stored = ApiKey.objects.get(prefix=prefix)
    assert len(stored.secret_hash) == 64
    assert stored.secret_hash != secret
    events = audit_events(tenant=tenant_a, action="api_key.create")
    assert [e.details["prefix"] for e in events] == [prefix]
    assert all(secret not in str(e.details) for e in events)


def test_valid_key_reads_its_own_tenant_and_scopes(issue_key, api, tenant_a):
    plaintext = issue_key(scopes=["messages:send", "contacts:read"], name="EHR bridge")
    response = api(plaintext).get("/api/v1/me")
    assert response.status_code == 200
    body = response.json()
    assert body["tenant"] == {"id": str(tenant_a.pk), "slug": "clinic-a"}
    assert body["key"]["prefix"] == plaintext.split("_")[1]
    assert body["key"]["name"] == "EHR bridge"
    assert body["key"]["scopes"] == ["contacts:read", "messages:send"]
    assert plaintext.split("_", 2)[2] not in response.content.decode()
    used = audit_events(tenant=tenant_a, action="api_key.use", outcome=AuditEvent.Outcome.SUCCESS)
    assert len(used) == 1


def _wrong_secret(key: str) -> str:
    return key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")


@pytest.mark.parametrize(
    ("case", "detail", "reason"),
    [
        ("wrong_secret", "Invalid API key.", "wrong secret"),
        ("unknown_prefix", "Invalid API key.", "unknown key"),
        ("malformed", "Malformed API key.", "malformed key"),
        ("revoked", "This API key was revoked.", "This API key was revoked."),
        ("expired", "This API key has expired.", "This API key has expired."),
        (
            "suspended_tenant",
            "The organization of this API key is suspended.",
            "The organization of this API key is suspended.",
        ),
    ],
)
def test_rejected_key_answers_401_problem_and_is_audited(issue_key, api, tenant_a, case, detail, reason):
    plaintext = issue_key(scopes=["contacts:read"])
    prefix = plaintext.split("_")[1]
    audited_tenant = tenant_a
    if case == "wrong_secret":
        presented = _wrong_secret(plaintext)
    elif case == "unknown_prefix":
        presented = "hm_0123456789ab_" + plaintext.split("_", 2)[2]
        audited_tenant = None
    elif case == "malformed":
        presented = "not-a-healthmail-key"
        audited_tenant = None
    else:
        presented = plaintext
        with tenant_context(tenant_a):
            api_key = ApiKey.objects.get(prefix=prefix)
        if case == "revoked":
            from healthmail.actors import Actor

            api_key_revoke(actor=Actor.system("tests"), tenant=tenant_a, api_key=api_key)
        elif case == "expired":
            with tenant_context(tenant_a):
                ApiKey.objects.filter(pk=api_key.pk).update(expires_at=days_ago(1))
        else:
            Tenant.objects.filter(pk=tenant_a.pk).update(status=Tenant.Status.SUSPENDED)

    response = api(presented).get("/api/v1/me")

    body = assert_problem(response, 401)
    assert body["detail"] == detail
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert plaintext.split("_", 2)[2] not in response.content.decode()
    denied = audit_events(tenant=audited_tenant, action="api_key.use", outcome=AuditEvent.Outcome.DENIED)
    assert [e.reason for e in denied] == [reason]
    assert all(plaintext.split("_", 2)[2] not in str(e.details) + e.actor_id for e in denied)
    assert not audit_events(tenant=tenant_a, action="api_key.use", outcome=AuditEvent.Outcome.SUCCESS)


def test_wrong_secret_and_unknown_key_are_indistinguishable(issue_key, api):
    plaintext = issue_key(scopes=["contacts:read"])
    wrong = api(_wrong_secret(plaintext)).get("/api/v1/me").json()
    unknown = api("hm_0123456789ab_" + plaintext.split("_", 2)[2]).get("/api/v1/me").json()
    assert {**wrong, "request_id": ""} == {**unknown, "request_id": ""}


def test_missing_credentials_answer_401(api):
    body = assert_problem(api(None).get("/api/v1/me"), 401, "not_authenticated")
    assert "credentials" in body["detail"]


def test_other_authorization_scheme_answers_401(api):
    client = api(None)
    response = client.client.get("/api/v1/me", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    body = assert_problem(response, 401, "authentication_failed")
    assert "Bearer" in body["detail"]


def test_session_of_a_person_does_not_open_the_api(member_client):
    client = member_client("tenant_admin")
    assert_problem(client.get("/api/v1/me"), 401)


@pytest.mark.urls("tests.api.urls")
def test_missing_scope_answers_403_and_is_audited(issue_key, api, tenant_a):
    plaintext = issue_key(scopes=["contacts:read"])
    response = api(plaintext).post("/api/v1/_test/notes", {"text": "hello"})
    body = assert_problem(response, 403, "permission_denied")
    assert "events:write" in body["detail"]
    denied = audit_events(tenant=tenant_a, action="api_key.scope_denied")
    assert len(denied) == 1
    assert denied[0].outcome == AuditEvent.Outcome.DENIED
    assert denied[0].details["missing_scopes"] == ["events:write"]
    assert not audit_events(tenant=tenant_a, action="test.note_create")


@pytest.mark.urls("tests.api.urls")
def test_operation_without_declared_scopes_is_refused(issue_key, api):
    plaintext = issue_key()  # every scope there is
    response = api(plaintext).get("/api/v1/_test/undeclared")
    body = assert_problem(response, 403)
    assert "reached" not in body


@pytest.mark.urls("tests.api.urls")
def test_key_with_the_scope_may_call(issue_key, api, tenant_a):
    plaintext = issue_key(scopes=["events:write"])
    response = api(plaintext).post("/api/v1/_test/notes", {"text": "hello"})
    assert response.status_code == 201
    assert len(audit_events(tenant=tenant_a, action="test.note_create")) == 1


def test_head_needs_the_same_scopes_as_get(issue_key, api):
    client = api(issue_key(scopes=["contacts:read"]))
    response = client.client.head("/api/v1/me", **client.headers)
    assert response.status_code == 200
    assert response.content == b""


def test_an_address_that_keeps_guessing_keys_is_throttled(client, settings):
    settings.API_KEY_FAILURE_LIMIT = 3
    guesses = [f"hm_{n:012x}_{'x' * 43}" for n in range(5)]
    statuses = [
        client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {guess}", REMOTE_ADDR="203.0.113.9").status_code
        for guess in guesses
    ]
    assert statuses == [401, 401, 401, 429, 429]
    other = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {guesses[0]}", REMOTE_ADDR="203.0.113.10")
    assert other.status_code == 401

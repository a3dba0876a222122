"""Idempotency-Key on POST, driven through a real endpoint (tests/api/urls.py NoteCreate)."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings
from django.utils import timezone

from healthmail.api import tasks
from healthmail.api.idempotency import RETENTION, _lock_id
from healthmail.api.models import IdempotencyRecord
from healthmail.celery import app
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem, audit_events

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]

NOTES = "/api/v1/_test/notes"


@pytest.fixture
def key_a(issue_key):
    return issue_key(scopes=["events:write"])


def _post(api, key, body, idempotency_key=None, **extra):
    if idempotency_key is not None:
        extra["HTTP_IDEMPOTENCY_KEY"] = idempotency_key
    return api(key).post(NOTES, body, **extra)


def _executions(tenant) -> int:
    return len(audit_events(tenant=tenant, action="test.note_create"))


def test_same_key_and_body_replays_the_first_answer(api, key_a, tenant_a):
    first = _post(api, key_a, {"text": "hello"}, "order-1")
    second = _post(api, key_a, {"text": "hello"}, "order-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert "Idempotent-Replayed" not in first
    assert second["Idempotent-Replayed"] == "true"
    assert _executions(tenant_a) == 1


def test_formatting_and_key_order_do_not_change_the_fingerprint(api, key_a, tenant_a):
    first = _post(api, key_a, '{"text": "hello", "explode": false}', "order-2")
    second = _post(api, key_a, '{"explode":false,\n "text":"hello"}', "order-2")
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert _executions(tenant_a) == 1


def test_same_key_with_another_body_answers_422(api, key_a, tenant_a):
    first = _post(api, key_a, {"text": "hello"}, "order-3")
    reused = _post(api, key_a, {"text": "goodbye"}, "order-3")
    assert first.status_code == 201
    assert_problem(reused, 422, "idempotency_key_reused")
    assert _executions(tenant_a) == 1


@pytest.mark.django_db(databases=["default", "owner"])
def test_duplicate_while_the_first_is_in_progress_answers_409(api, key_a, tenant_a, owner_connection):
    # Another transaction (another request) holds the key: what a first request does until it commits.
    prefix = key_a.split("_")[1]
    lock = _lock_id(tenant_a.pk, prefix, "order-4")
    with owner_connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [lock])
    try:
        response = _post(api, key_a, {"text": "hello"}, "order-4")
    finally:
        with owner_connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock])
    assert_problem(response, 409, "idempotency_key_in_progress")
    assert _executions(tenant_a) == 0
    # Once the other request is done the key works.
    assert _post(api, key_a, {"text": "hello"}, "order-4").status_code == 201


def test_unfinished_record_answers_409(api, key_a, tenant_a):
    first = _post(api, key_a, {"text": "hello"}, "order-5")
    with tenant_context(tenant_a):
        IdempotencyRecord.objects.filter(key="order-5").update(completed_at=None)
    assert_problem(_post(api, key_a, {"text": "hello"}, "order-5"), 409, "idempotency_key_in_progress")
    assert first.status_code == 201


@pytest.mark.parametrize("bad_key", ["", "has space", "caf\u00e9", "tab\tkey", "x" * 256])
def test_malformed_key_answers_400(api, key_a, tenant_a, bad_key):
    response = _post(api, key_a, {"text": "hello"}, bad_key)
    body = assert_problem(response, 400, "idempotency_key_invalid")
    assert "255" in body["detail"]
    assert _executions(tenant_a) == 0


def test_longest_and_shortest_keys_are_accepted(api, key_a):
    assert _post(api, key_a, {"text": "a"}, "x" * 255).status_code == 201
    assert _post(api, key_a, {"text": "b"}, "!").status_code == 201


def test_without_a_key_every_post_runs(api, key_a, tenant_a):
    ids = {_post(api, key_a, {"text": "hello"}).json()["id"] for _ in range(2)}
    assert len(ids) == 2
    assert _executions(tenant_a) == 2


def test_keys_are_separate_per_api_key_and_per_tenant(api, issue_key, key_a, tenant_a, tenant_b):
    other_key_same_tenant = issue_key(scopes=["events:write"])
    key_b = issue_key(scopes=["events:write"], tenant=tenant_b)
    ids = {
        _post(api, key, {"text": "hello"}, "shared").json()["id"]
        for key in (key_a, other_key_same_tenant, key_b)
    }
    assert len(ids) == 3
    assert _executions(tenant_a) == 2
    assert _executions(tenant_b) == 1


def test_a_failed_request_frees_its_key(api, key_a, tenant_a):
    assert_problem(_post(api, key_a, {"text": ""}, "order-6"), 422, "validation_failed")
    assert_problem(_post(api, key_a, {"text": "x", "explode": True}, "order-6"), 500, "server_error")
    retried = _post(api, key_a, {"text": "corrected"}, "order-6")
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    with tenant_context(tenant_a):
        record = IdempotencyRecord.objects.get(key="order-6")
    assert record.status_code == 201
    assert record.response_body == retried.json()
    assert record.completed_at is not None


def test_stored_record_holds_a_hash_not_the_request(api, key_a, tenant_a):
    _post(api, key_a, {"text": "request-canary"}, "order-7")
    with tenant_context(tenant_a):
        record = IdempotencyRecord.objects.get(key="order-7")
    assert record.api_key_prefix == key_a.split("_")[1]
    assert len(record.request_fingerprint) == 64
    assert "request-canary" not in record.request_fingerprint


def test_a_key_older_than_24_hours_runs_again(api, key_a, tenant_a):
    first = _post(api, key_a, {"text": "hello"}, "order-8")
    with tenant_context(tenant_a):
        IdempotencyRecord.objects.filter(key="order-8").update(
            created_at=timezone.now() - RETENTION - datetime.timedelta(minutes=1)
        )
    second = _post(api, key_a, {"text": "goodbye"}, "order-8")
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]


def test_expiry_task_deletes_old_records_of_every_tenant(api, issue_key, key_a, tenant_a, tenant_b):
    key_b = issue_key(scopes=["events:write"], tenant=tenant_b)
    for key, tenant in ((key_a, tenant_a), (key_b, tenant_b)):
        _post(api, key, {"text": "old"}, "old")
        _post(api, key, {"text": "new"}, "new")
        with tenant_context(tenant):
            IdempotencyRecord.objects.filter(key="old").update(
                created_at=timezone.now() - datetime.timedelta(hours=25)
            )

    assert tasks.idempotency_expire() == 2

    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant):
            assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_expiry_task_is_scheduled_hourly():
    entry = settings.CELERY_BEAT_SCHEDULE["api-idempotency-expire"]
    assert entry["task"] == tasks.idempotency_expire.name
    assert entry["schedule"] <= 3600
    assert tasks.idempotency_expire.name in app.tasks

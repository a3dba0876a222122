"""Replay protection by `jti` when the replay races the original: two identical client assertions
presented at the same moment over real HTTP, each request in its own connection and transaction.
Exactly one buys a token; the other is refused as every failed client authentication is
(`invalid_client`, 401: RFC 7523 §3.2, SMART client-confidential-asymmetric), never a 500.

The race is forced, not hoped for: the first request to reach token issue (its `jti` recorded, not yet
committed) is held until PostgreSQL shows the other request waiting on that row's lock."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.db import connection

from healthmail.accounts import smart
from healthmail.accounts.models import ApiKey, SmartClient
from healthmail.tenants.context import tenant_context
from tests.factories import BaaFactory, TenantFactory
from tests.live_server import served_over_http

from .smart import register

WAIT_SECONDS = 10


@pytest.fixture(scope="module")
def server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    with served_over_http(django_db_blocker) as url:
        yield url


def _post(url: str, form: dict) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 (the test's own loopback server)
        url, data=urlencode(form).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def _someone_waits_on_a_row_lock() -> bool:
    """A transaction waits for another to end: an INSERT of a unique key that one holds uncommitted."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted")
        return cursor.fetchone()[0] > 0


def test_two_identical_assertions_at_once_buy_one_token(committed_db, server_url):
    tenant = TenantFactory(name=f"Race clinic {uuid.uuid4().hex[:6]}", slug=f"race-{uuid.uuid4().hex[:10]}")
    BaaFactory(tenant=tenant)
    backend = register(tenant, scopes=["contacts:read", "contacts:phi"])
    token_url = f"{server_url}/api/oauth/token"
    form = backend.form(scope="system/Patient.rs", aud=token_url)  # one assertion, one jti, sent twice

    holding = threading.Event()  # a request recorded the jti and waits before issuing its token
    release = threading.Event()
    real_create = smart.api_key_create

    def held_create(**kwargs):
        if not holding.is_set():
            holding.set()
            release.wait(WAIT_SECONDS)
        return real_create(**kwargs)

    answers: list[tuple[int, dict]] = []

    def present() -> None:
        answers.append(_post(token_url, form))

    with mock.patch.object(smart, "api_key_create", held_create):
        requests = [threading.Thread(target=present) for _ in range(2)]
        for request in requests:
            request.start()
        assert holding.wait(WAIT_SECONDS), answers
        deadline = time.monotonic() + WAIT_SECONDS
        raced = _someone_waits_on_a_row_lock()
        while not raced and time.monotonic() < deadline and len(answers) < 1:
            time.sleep(0.05)
            raced = _someone_waits_on_a_row_lock()
        release.set()
        for request in requests:
            request.join(60)

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 401], answers
    (issued,) = [body for status, body in answers if status == 200]
    (refused,) = [body for status, body in answers if status == 401]
    assert issued["access_token"].startswith("hm_")
    assert refused["error"] == "invalid_client"
    assert "already used" in refused["error_description"]
    assert "access_token" not in refused
    assert raced, "the second request never waited on the first one's jti: the requests did not overlap"
    with tenant_context(tenant):
        client = SmartClient.objects.get(client_id=backend.client_id)
        assert ApiKey.objects.filter(smart_client=client).count() == 1

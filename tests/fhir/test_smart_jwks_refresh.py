"""The beat refresh of SMART clients' JWK Sets by URL: fetched again before the cache expires, so a
token request does not wait on the client's server and a rotation there is picked up; through the
same SSRF guard; a failure keeps the cached keys only until they expire (then fail closed)."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from healthmail.accounts.models import SmartClient
from healthmail.accounts.smart import smart_client_revoke
from healthmail.accounts.smart_jwks import RefreshSummary, _claim, _due_clients, jwks_refresh_due
from healthmail.accounts.tasks import smart_jwks_refresh
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events

from .smart import Backend, new_key
from .test_smart import _token
from .test_smart_jwks_url import SCOPE, KeyServer, _age_attempt, _register

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_server(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True  # the client's server listens on loopback here
    server = KeyServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture(autouse=True)
def periods(settings):
    settings.SMART_JWKS_CACHE_SECONDS = 3600
    settings.SMART_JWKS_REFRESH_SECONDS = 300  # due once 3000 s old: two beat periods before expiry
    settings.SMART_JWKS_REFETCH_SECONDS = 60


def test_the_beat_runs_the_refresh():
    entry = django_settings.CELERY_BEAT_SCHEDULE["smart-jwks-refresh"]
    assert entry["task"] == smart_jwks_refresh.name


def test_a_rotation_is_picked_up_before_expiry_and_the_token_path_stays_off_the_network(tenant_a, key_server):
    old, new = new_key(), new_key()
    key_server.publish(old)
    client_id = _register(tenant_a, key_server.url)
    _age_attempt(tenant_a, client_id, 3100)  # not stale yet, but within the refresh window
    key_server.publish(new)  # the client rotates on its own server

    summary = smart_jwks_refresh()

    assert (summary, key_server.hits) == ({"refreshed": 0, "rotated": 1, "failed": 0}, 2)
    assert _token(Backend(client_id, new, "RS384").form(SCOPE)).status_code == 200
    refused = _token(Backend(client_id, old, "RS384").form(SCOPE))
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    assert key_server.hits == 2  # neither token request fetched
    [rotated] = [e for e in audit_events(tenant=tenant_a) if e.action == "smart.jwks_rotated"]
    assert rotated.details == {"kids_before": [old.kid], "kids_after": [new.kid]}


def test_a_fresh_cache_is_left_alone_and_an_unchanged_set_is_not_recorded(tenant_a, key_server):
    key_server.publish(new_key())
    client_id = _register(tenant_a, key_server.url)
    _age_attempt(tenant_a, client_id, 2900)
    assert jwks_refresh_due() == RefreshSummary()
    assert key_server.hits == 1

    _age_attempt(tenant_a, client_id, 200)
    assert jwks_refresh_due() == RefreshSummary(refreshed=1)
    assert jwks_refresh_due() == RefreshSummary()  # fetched just now: not due again

    assert key_server.hits == 2
    assert not [e for e in audit_events(tenant=tenant_a) if e.action == "smart.jwks_rotated"]
    with tenant_context(tenant_a):
        fetched_at = SmartClient.objects.get(client_id=client_id).jwks_fetched_at
    assert timezone.now() - fetched_at < datetime.timedelta(seconds=60)


def test_two_runs_at_once_fetch_a_client_once(tenant_a, key_server):
    key_server.publish(new_key())
    client_id = _register(tenant_a, key_server.url)
    _age_attempt(tenant_a, client_id, 3100)
    now = timezone.now()
    [(client_pk, attempted_at)] = _due_clients(tenant_a.pk, now)
    assert _due_clients(tenant_a.pk, now) == [(client_pk, attempted_at)]  # both runs see it due

    assert _claim(tenant_a.pk, client_pk, attempted_at, now) is not None
    assert _claim(tenant_a.pk, client_pk, attempted_at, now) is None  # the other run stands down


def test_a_failed_refresh_keeps_the_keys_until_they_expire_then_fails_closed(tenant_a, key_server):
    key = new_key()
    key_server.publish(key)
    client_id = _register(tenant_a, key_server.url)
    _age_attempt(tenant_a, client_id, 3100)
    key_server.status = 503

    assert jwks_refresh_due().failed == 1
    assert _token(Backend(client_id, key, "RS384").form(SCOPE)).status_code == 200  # still cached

    _age_attempt(tenant_a, client_id, 600)  # now past the cache time, the server still down
    refused = _token(Backend(client_id, key, "RS384").form(SCOPE))
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    assert "could not be fetched" in refused.json()["error_description"]


def test_the_ssrf_guard_applies_to_the_refresh(tenant_a, key_server, settings):
    key_server.publish(new_key())
    client_id = _register(tenant_a, key_server.url)
    _age_attempt(tenant_a, client_id, 3100)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False  # the key server listens on loopback

    assert jwks_refresh_due().failed == 1
    assert key_server.hits == 1  # refused before any connection


def test_revoked_and_inline_clients_are_not_fetched(tenant_a, key_server):
    from healthmail.accounts.smart import smart_client_register

    key = new_key()
    key_server.publish(key)
    client_id = _register(tenant_a, key_server.url)
    smart_client_register(
        actor=Actor.system("tests"),
        tenant=tenant_a,
        name="EHR (inline keys)",
        jwks={"keys": [key.as_dict(private=False)]},
        scopes=["contacts:read"],
    )
    with tenant_context(tenant_a):
        client = SmartClient.objects.get(client_id=client_id)
    smart_client_revoke(actor=Actor.system("tests"), tenant=tenant_a, client=client)
    _age_attempt(tenant_a, client_id, 3601)

    assert jwks_refresh_due() == RefreshSummary()
    assert key_server.hits == 1

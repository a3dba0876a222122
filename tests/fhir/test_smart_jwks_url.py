"""SMART clients registered with a JWK Set URL: fetched through the SSRF guard with size and time
limits, cached, fetched again early for an unknown kid at most once per interval, and failing closed
when the cache is stale and cannot be refreshed. The client's server is a real HTTP server here."""

from __future__ import annotations

import datetime
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from joserfc.jwk import KeySet

from healthmail.accounts.models import SmartClient
from healthmail.accounts.smart import smart_client_register
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context

from .smart import Backend, new_key
from .test_smart import _token

pytestmark = pytest.mark.django_db
SCOPES = ["contacts:read", "contacts:phi"]
SCOPE = "system/Patient.rs"


class KeyServer:
    """The client's own server: answers its JWK Set (or a failure) and counts the requests."""

    def __init__(self):
        self.document: bytes = b""
        self.status = 200
        self.delay = 0.0
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits += 1
                time.sleep(server.delay)
                self.send_response(server.status)
                if server.status in (301, 302):
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Type", "application/jwk-set+json")
                self.send_header("Content-Length", str(len(server.document)))
                self.end_headers()
                self.wfile.write(server.document)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, *keys) -> None:
        self.document = json.dumps(KeySet(list(keys)).as_dict(private=False)).encode()


@pytest.fixture
def key_server(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True  # the test server listens on loopback
    server = KeyServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _register(tenant, url: str) -> str:
    client = smart_client_register(
        actor=Actor.system("tests"), tenant=tenant, name="EHR (keys by URL)", jwks_url=url, scopes=SCOPES
    )
    return client.client_id


def _age_attempt(tenant, client_id: str, seconds: int) -> None:
    earlier = datetime.timedelta(seconds=seconds)
    with tenant_context(tenant):
        client = SmartClient.objects.get(client_id=client_id)
        SmartClient.objects.filter(pk=client.pk).update(
            jwks_attempted_at=client.jwks_attempted_at - earlier,
            jwks_fetched_at=client.jwks_fetched_at - earlier,
        )


def test_keys_by_url_follow_a_rotation_when_an_unknown_kid_arrives(tenant_a, key_server, settings):
    settings.SMART_JWKS_REFETCH_SECONDS = 0
    old, new = new_key(), new_key()
    key_server.publish(old)
    client_id = _register(tenant_a, key_server.url)
    assert key_server.hits == 1

    assert _token(Backend(client_id, old, "RS384").form(SCOPE)).status_code == 200
    assert key_server.hits == 1  # the cache answered

    key_server.publish(new)  # the client rotates on its own server
    assert _token(Backend(client_id, new, "RS384").form(SCOPE)).status_code == 200
    assert key_server.hits == 2
    refused = _token(Backend(client_id, old, "RS384").form(SCOPE))
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")


def test_made_up_kids_fetch_at_most_once_per_interval(tenant_a, key_server, settings):
    settings.SMART_JWKS_REFETCH_SECONDS = 60
    key_server.publish(new_key())
    client_id = _register(tenant_a, key_server.url)

    for _ in range(5):
        assert _token(Backend(client_id, new_key(), "RS384").form(SCOPE)).status_code == 401
    assert key_server.hits == 1  # only the registration's fetch

    _age_attempt(tenant_a, client_id, 61)
    assert _token(Backend(client_id, new_key(), "RS384").form(SCOPE)).status_code == 401
    assert key_server.hits == 2


def test_a_stale_cache_that_cannot_be_refreshed_verifies_nothing(tenant_a, key_server, settings):
    settings.SMART_JWKS_CACHE_SECONDS = 3600
    key = new_key()
    key_server.publish(key)
    client_id = _register(tenant_a, key_server.url)
    _age_attempt(tenant_a, client_id, 3601)
    key_server.status = 503

    refused = _token(Backend(client_id, key, "RS384").form(SCOPE))

    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_client")
    assert "could not be fetched" in refused.json()["error_description"]
    assert key_server.hits == 2
    key_server.status = 200
    _age_attempt(tenant_a, client_id, 61)
    assert _token(Backend(client_id, key, "RS384").form(SCOPE)).status_code == 200


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"status": 302}, "answered 302"),  # a redirect is not followed
        ({"status": 404}, "answered 404"),
        ({"document": b"x" * 2000}, "larger than 1000 bytes"),
        ({"delay": 1.5}, "no answer in time"),
        ({"document": b"<html>not json</html>"}, "did not answer JSON"),
    ],
)
def test_registration_refuses_what_the_url_answers_badly(tenant_a, key_server, settings, change, said):
    settings.SMART_JWKS_MAX_BYTES = 1000
    settings.SMART_JWKS_TIMEOUT_SECONDS = 0.5
    for name, value in change.items():
        setattr(key_server, name, value)
    with pytest.raises(ApplicationError, match=said):
        _register(tenant_a, key_server.url)
    with tenant_context(tenant_a):
        assert not SmartClient.objects.exists()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://ehr.example.org/jwks.json", "must use https"),
        ("https://127.0.0.1/jwks.json", "private, loopback or reserved"),
        ("https://169.254.169.254/latest/meta-data/", "private, loopback or reserved"),
        ("https://[::ffff:10.0.0.1]/jwks.json", "private, loopback or reserved"),
        ("https://2130706433/jwks.json", "refused"),
        ("https://metadata.google.internal/jwks.json", "internal host names"),
        ("https://user:pw@ehr.example.org/jwks.json", "refused"),
    ],
)
def test_registration_refuses_urls_the_guard_refuses(tenant_a, url, said):
    with pytest.raises(ApplicationError, match=said) as refused:
        _register(tenant_a, url)
    assert refused.value.code == "jwks_url_refused"

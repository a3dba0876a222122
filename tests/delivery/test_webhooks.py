"""Webhooks out: signed payloads without PHI to a real local HTTP server, retries with backoff, the
delivery log, and SSRF refusals (WEBHOOK_ALLOW_PRIVATE_TARGETS on only where a test needs the server)."""

from __future__ import annotations

import datetime
import http.server
import json
import random
import threading

import pytest
from django.utils import timezone

from delivery.models import WebhookDelivery
from delivery.webhooks import sender, services
from healthmail.actors import Actor
from healthmail.egress.ssrf import UnsafeTarget
from healthmail.tenants.context import tenant_context

from .outbox_helpers import PHI_BODY, make_message

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


class Receiver:
    """A loopback HTTP server recording every request; answers the queued status codes, then 200."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes, str]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers), body, self.path))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks?src=hm"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    server = Receiver()
    yield server
    server.stop()


def _endpoint(tenant, url, events=("message.delivered", "message.bounced")):
    return services.endpoint_create(tenant=tenant, actor=ACTOR, url=url, event_types=list(events))


def _attempt(tenant, delivery) -> WebhookDelivery:
    with tenant_context(tenant):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        services.webhook_delivery_attempt(delivery_id=delivery.pk)
        return WebhookDelivery.objects.get(pk=delivery.pk)


def test_signed_payload_without_phi_reaches_the_endpoint(
    tenant_a, receiver, django_capture_on_commit_callbacks
):
    created = _endpoint(tenant_a, receiver.url)
    message = make_message(tenant_a, address="zeb@patients.example")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        [delivery] = services.webhooks_notify(message, "message.delivered")
    assert len(callbacks) == 1  # the task goes out only after commit
    done = _attempt(tenant_a, delivery)
    assert done.state == WebhookDelivery.State.SUCCEEDED
    assert done.last_status_code == 200
    [(headers, body, path)] = receiver.requests
    assert path == "/hooks?src=hm"
    assert sender.signature_valid(
        created.secret, headers[sender.TIMESTAMP_HEADER], body, headers[sender.SIGNATURE_HEADER]
    )
    assert not sender.signature_valid(
        "whsec_other", headers[sender.TIMESTAMP_HEADER], body, headers[sender.SIGNATURE_HEADER]
    )
    payload = json.loads(body)
    assert payload["message_id"] == str(message.pk)
    assert payload["event"] == "message.delivered"
    assert payload["delivery_id"] == str(delivery.pk)
    for secret in ("zeb@patients.example", "HbA1c", PHI_BODY):
        assert secret not in body.decode()


def test_stale_signatures_are_rejected_by_the_receiver_rule():
    old = int(timezone.now().timestamp()) - 600
    body = b"{}"
    assert not sender.signature_valid("s", str(old), body, sender.signature("s", old, body))


def test_only_subscribed_active_endpoints_get_events(tenant_a, tenant_b, receiver):
    _endpoint(tenant_a, receiver.url, events=["message.bounced"])
    _endpoint(tenant_b, receiver.url, events=["message.delivered"])
    message = make_message(tenant_a)
    assert services.webhooks_notify(message, "message.delivered") == []


def test_failures_retry_with_backoff_then_succeed(tenant_a, receiver):
    _endpoint(tenant_a, receiver.url)
    receiver.statuses = [500, 503]
    [delivery] = services.webhooks_notify(make_message(tenant_a), "message.delivered")
    first = _attempt(tenant_a, delivery)
    assert first.state == WebhookDelivery.State.PENDING
    assert first.last_status_code == 500
    assert first.next_attempt_at > timezone.now() + datetime.timedelta(seconds=10)
    _attempt(tenant_a, delivery)
    final = _attempt(tenant_a, delivery)
    assert final.state == WebhookDelivery.State.SUCCEEDED
    assert [entry["status"] for entry in final.attempt_log] == [500, 503, 200]


def test_a_delivery_not_due_is_not_sent(tenant_a, receiver):
    _endpoint(tenant_a, receiver.url)
    [delivery] = services.webhooks_notify(make_message(tenant_a), "message.delivered")
    with tenant_context(tenant_a):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            next_attempt_at=timezone.now() + datetime.timedelta(hours=1)
        )
        assert services.webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert receiver.requests == []


def test_redirects_are_not_followed(tenant_a, receiver):
    _endpoint(tenant_a, receiver.url)
    receiver.statuses = [302]
    [delivery] = services.webhooks_notify(make_message(tenant_a), "message.delivered")
    done = _attempt(tenant_a, delivery)
    assert done.state == WebhookDelivery.State.PENDING
    assert done.last_error == "redirect not followed"
    assert len(receiver.requests) == 1


def test_gives_up_after_max_attempts(tenant_a, receiver):
    _endpoint(tenant_a, receiver.url)
    receiver.statuses = [500] * services.MAX_ATTEMPTS
    [delivery] = services.webhooks_notify(make_message(tenant_a), "message.delivered")
    for _ in range(services.MAX_ATTEMPTS):
        done = _attempt(tenant_a, delivery)
    assert done.state == WebhookDelivery.State.FAILED
    assert done.attempts == services.MAX_ATTEMPTS


def test_backoff_grows_exponentially_and_is_capped():
    rng = random.Random(1)
    delays = [services.backoff(n, rng=rng).total_seconds() for n in range(1, 12)]
    assert 15 <= delays[0] <= 30
    assert 120 <= delays[3] <= 240
    assert max(delays) <= services.MAX_DELAY_SECONDS


def test_private_targets_are_refused_without_the_test_setting(tenant_a):
    with pytest.raises(UnsafeTarget):
        _endpoint(tenant_a, "http://127.0.0.1:9/hooks")
    with pytest.raises(UnsafeTarget):
        _endpoint(tenant_a, "https://127.0.0.1/hooks")


def test_a_target_that_turns_private_later_is_refused_at_send_time(tenant_a, settings):
    """DNS rebinding: the name resolved to a public address when saved, to loopback when sending."""
    answers = {"hooks.partner.example": ["93.184.215.14"]}
    created = services.endpoint_create(
        tenant=tenant_a,
        actor=ACTOR,
        url="https://hooks.partner.example/in",
        event_types=["message.delivered"],
        resolve=lambda host, port: answers[host],
    )
    [delivery] = services.webhooks_notify(make_message(tenant_a), "message.delivered")
    answers["hooks.partner.example"] = ["127.0.0.1"]
    with tenant_context(tenant_a):
        services.webhook_delivery_attempt(delivery_id=delivery.pk, resolve=lambda host, port: answers[host])
        done = WebhookDelivery.objects.get(pk=delivery.pk)
    assert done.last_status_code is None
    assert "private" in done.last_error
    assert created.endpoint.url == "https://hooks.partner.example/in"


def test_unknown_event_types_are_refused(tenant_a, receiver):
    with pytest.raises(services.WebhookError):
        _endpoint(tenant_a, receiver.url, events=["message.everything"])
    with pytest.raises(ValueError, match="Unknown webhook event"):
        services.webhooks_notify(make_message(tenant_a), "message.exploded")


def test_secret_is_sealed_at_rest(tenant_a, receiver):
    from django.db import connection

    created = _endpoint(tenant_a, receiver.url)
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM delivery_webhookendpoint WHERE id = %s", [created.endpoint.pk])
        stored = bytes(cursor.fetchone()[0])
    assert created.secret.startswith("whsec_")
    assert created.secret.encode() not in stored

"""The engine announces every documented state change through webhooks, from the transaction that
changed the state: a receiver gets each event once after de-duplicating by event id, with valid
signatures; and the webhook API edits, pings, re-keys and redelivers."""

from __future__ import annotations

import datetime
import json

import pytest
from django.utils import timezone

from consent import suppressions
from consent.models import Suppression
from delivery.engine.sweeper import delivery_sweep
from delivery.engine.worker import drain
from delivery.models import Message, Stream, WebhookDelivery
from delivery.webhooks import sender, services
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context

from .engine_support import dependencies, enqueue, reload, verified_sender_domain
from .test_webhooks import Receiver

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")
MESSAGE_EVENTS = [
    "message.delivered",
    "message.deferred",
    "message.bounced",
    "message.failed",
    "message.suppressed",
]


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    server = Receiver()
    yield server
    server.stop()


def _deliver_all(tenant) -> None:
    """What the webhook tasks do, for every due row (run here so the test needs no worker)."""
    with tenant_context(tenant):
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING).update(
            next_attempt_at=timezone.now()
        )
        due = services.webhook_deliveries_due(tenant_id=tenant.pk)
    for delivery_id in due:
        with tenant_context(tenant):
            services.webhook_delivery_attempt(delivery_id=delivery_id)


def _received(receiver, secret: str) -> dict[str, dict]:
    """Events by event id, after checking every signature (what a careful receiver does)."""
    events: dict[str, dict] = {}
    for headers, body, _path in receiver.requests:
        assert sender.signature_valid(
            secret, headers[sender.TIMESTAMP_HEADER], body, headers[sender.SIGNATURE_HEADER]
        )
        payload = json.loads(body)
        events.setdefault(payload["event_id"], payload)
    return events


def test_a_receiver_gets_each_documented_event_once(tenant_a, kit, transport, receiver):
    created = services.endpoint_create(
        tenant=tenant_a, actor=ACTOR, url=receiver.url, event_types=MESSAGE_EVENTS
    )
    sender_domain, _ = verified_sender_domain(tenant_a)
    delivered, deferred, bounced, suppressed = enqueue(
        tenant_a,
        ["ada@good.test", "bo@tempfail.test", "cy@reject.test", "di@good.test"],
        sender_domain=sender_domain,
    )
    with tenant_context(tenant_a):
        suppressions.suppression_add(
            tenant=tenant_a, actor=ACTOR, reason=Suppression.Reason.MANUAL, contact=suppressed.contact
        )

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))
    states = {m.pk: m.state for m in reload(tenant_a, [delivered, deferred, bounced, suppressed])}
    assert states == {
        delivered.pk: Message.State.DELIVERED_TLS,
        deferred.pk: Message.State.DEFERRED,
        bounced.pk: Message.State.BOUNCED,
        suppressed.pk: Message.State.SUPPRESSED,
    }
    _deliver_all(tenant_a)
    receiver.statuses = [500]  # the receiver fails once: the retry brings the event again, same id
    with tenant_context(tenant_a):
        first = WebhookDelivery.objects.filter(tenant=tenant_a).order_by("created_at").first()
        services.webhook_redeliver(
            tenant=tenant_a, actor=ACTOR, endpoint=first.endpoint, delivery_id=first.pk
        )
    _deliver_all(tenant_a)
    _deliver_all(tenant_a)

    events = _received(receiver, created.secret)
    assert len(receiver.requests) > len(events)  # duplicates did arrive; the event id folds them
    assert sorted((e["message_id"], e["event"], e["state"]) for e in events.values()) == sorted(
        [
            (str(delivered.pk), "message.delivered", "delivered_tls"),
            (str(deferred.pk), "message.deferred", "deferred"),
            (str(bounced.pk), "message.bounced", "bounced"),
            (str(suppressed.pk), "message.suppressed", "suppressed"),
        ]
    )
    suppressed_event = next(e for e in events.values() if e["event"] == "message.suppressed")
    assert suppressed_event["reason"].startswith("suppressed")  # the gate's own code
    for _headers, body, _path in receiver.requests:
        for local_part in (b"ada@", b"bo@", b"cy@", b"di@"):  # no address, nor a server reply quoting it
            assert local_part not in body


def test_expiry_by_the_sweeper_is_announced_as_a_failure(tenant_a, receiver):
    services.endpoint_create(tenant=tenant_a, actor=ACTOR, url=receiver.url, event_types=["message.failed"])
    sender_domain, _ = verified_sender_domain(tenant_a)
    (message,) = enqueue(tenant_a, ["ed@good.test"], sender_domain=sender_domain)
    with tenant_context(tenant_a):
        Message.objects.filter(pk=message.pk).update(
            expires_at=timezone.now() - datetime.timedelta(minutes=1)
        )

    report = delivery_sweep(tenant_ids=[tenant_a.pk], wake=lambda **kwargs: None)

    assert report.expired == 1
    with tenant_context(tenant_a):
        (delivery,) = WebhookDelivery.objects.filter(tenant=tenant_a)
    assert (delivery.event_type, delivery.payload["message_id"], delivery.payload["state"]) == (
        "message.failed",
        str(message.pk),
        "expired",
    )


def test_no_endpoint_means_no_rows_and_no_endpoint_query_cost_beyond_one(tenant_a, kit, transport):
    sender_domain, _ = verified_sender_domain(tenant_a)
    enqueue(tenant_a, ["fay@good.test"], sender_domain=sender_domain)
    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))
    with tenant_context(tenant_a):
        assert not WebhookDelivery.objects.filter(tenant=tenant_a).exists()


# --- The API ---------------------------------------------------------------------------------------


@pytest.fixture
def hooks_api(issue_key, api):
    return api(issue_key(scopes=["webhooks:manage"]))


def _create(hooks_api, receiver) -> dict:
    answer = hooks_api.post(
        "/api/v1/webhooks", json.dumps({"url": receiver.url, "event_types": ["message.delivered"]})
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_patch_changes_url_events_and_active_and_checks_the_new_url(hooks_api, receiver, settings):
    endpoint = _create(hooks_api, receiver)
    url = f"/api/v1/webhooks/{endpoint['id']}"
    changed = hooks_api.generic(
        "PATCH", url, json.dumps({"event_types": ["message.bounced", "message.failed"], "active": False})
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["event_types"], changed.json()["active"]) == (
        ["message.bounced", "message.failed"],
        False,
    )
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    refused = hooks_api.generic("PATCH", url, json.dumps({"url": "http://169.254.169.254/latest/"}))
    assert refused.status_code in (400, 422), refused.content
    assert hooks_api.get(url).json()["url"] == receiver.url


def test_ping_reaches_the_endpoint_signed(tenant_a, hooks_api, receiver):
    endpoint = _create(hooks_api, receiver)
    answer = hooks_api.post(f"/api/v1/webhooks/{endpoint['id']}/ping")
    assert answer.status_code == 202, answer.content
    _deliver_all(tenant_a)
    [(headers, body, _path)] = receiver.requests
    assert json.loads(body)["event"] == "webhook.test"
    assert sender.signature_valid(
        endpoint["secret"], headers[sender.TIMESTAMP_HEADER], body, headers[sender.SIGNATURE_HEADER]
    )


def test_rotation_signs_with_both_secrets_during_the_grace_then_only_the_new(tenant_a, hooks_api, receiver):
    endpoint = _create(hooks_api, receiver)
    rotated = hooks_api.post(
        f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", json.dumps({"grace_seconds": 3600})
    )
    assert rotated.status_code == 200, rotated.content
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"]
    hooks_api.post(f"/api/v1/webhooks/{endpoint['id']}/ping")
    _deliver_all(tenant_a)
    headers, body, _path = receiver.requests[-1]
    for secret in (endpoint["secret"], new_secret):  # receivers on either secret accept it
        assert sender.signature_valid(
            secret, headers[sender.TIMESTAMP_HEADER], body, headers[sender.SIGNATURE_HEADER]
        )

    hooks_api.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", json.dumps({"grace_seconds": 0}))
    with tenant_context(tenant_a):
        newest = services.endpoint_get(tenant=tenant_a, endpoint_id=endpoint["id"]).secret
    hooks_api.post(f"/api/v1/webhooks/{endpoint['id']}/ping")
    _deliver_all(tenant_a)
    headers, body, _path = receiver.requests[-1]
    stamp, signature = headers[sender.TIMESTAMP_HEADER], headers[sender.SIGNATURE_HEADER]
    assert sender.signature_valid(str(newest), stamp, body, signature)
    assert not sender.signature_valid(new_secret, stamp, body, signature)  # no grace: the old one is gone
    too_long = hooks_api.post(
        f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", json.dumps({"grace_seconds": 30 * 24 * 3600})
    )
    assert too_long.status_code == 422


def test_redeliver_sends_the_same_event_again_under_a_new_delivery(tenant_a, hooks_api, receiver):
    endpoint = _create(hooks_api, receiver)
    ping = hooks_api.post(f"/api/v1/webhooks/{endpoint['id']}/ping").json()
    again = hooks_api.post(f"/api/v1/webhook-deliveries/{ping['id']}/redeliver")
    assert again.status_code == 202, again.content
    assert again.json()["id"] != ping["id"]
    _deliver_all(tenant_a)
    bodies = [json.loads(body) for _headers, body, _path in receiver.requests]
    assert len(bodies) == 2
    assert bodies[0]["event_id"] == bodies[1]["event_id"]
    assert {b["delivery_id"] for b in bodies} == {ping["id"], again.json()["id"]}
    listed = hooks_api.get(f"/api/v1/webhooks/{endpoint['id']}/deliveries").json()
    assert {row["id"] for row in listed["results"]} == {ping["id"], again.json()["id"]}

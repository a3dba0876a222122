"""Redis (cache and broker) shut down with SHUTDOWN NOSAVE while PostgreSQL is up: the API keeps
answering (its rate counters move into the process), a message it accepts is committed and woken by
the sweeper later, and nothing answers 500; a page that cannot work without Redis answers 503."""

from __future__ import annotations

import json
import uuid

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from delivery.engine.sweeper import delivery_sweep
from delivery.models import Message
from healthmail.accounts.api_keys import SCOPES, api_key_create
from healthmail.actors import Actor
from healthmail.api_paths import is_api_path
from healthmail.tenants.context import tenant_context
from tests.campaigns.conftest import verified_domain
from tests.factories import BaaFactory, TenantFactory

from .conftest import every_route

pytestmark = pytest.mark.usefixtures("committed_db", "redis_down")


@pytest.fixture
def tenant():
    slug = f"outage-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Outage {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


def _client(tenant) -> Client:
    key = api_key_create(actor=Actor.system("tests"), tenant=tenant, name="Outage", scopes=list(SCOPES))
    return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")


def test_api_keys_are_served_and_limited_in_process(tenant, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_key": "3/min"},
    }
    client = _client(tenant)
    answers = [client.get("/api/v1/me") for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    # The in-process count announces its window like the shared one: a reset while requests remain,
    # and the 429's Retry-After equal to it.
    assert all(0 < int(answer["RateLimit-Reset"]) <= 60 for answer in answers)
    assert answers[3]["Retry-After"] == answers[3]["RateLimit-Reset"]


def test_bad_keys_are_still_counted_in_process(tenant, settings):
    settings.API_KEY_FAILURE_LIMIT = 2
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION="Bearer hm_notakey_0000")
    answers = [client.get("/api/v1/me") for _ in range(3)]
    assert [a.json()["code"] for a in answers] == ["authentication_failed"] * 2 + ["rate_limited"]
    assert answers[2].status_code == 429  # refused before any lookup: the address is throttled


def test_an_accepted_message_is_committed_and_woken_by_the_sweeper(tenant):
    verified_domain(tenant)
    body = {
        "recipient": {"address": "someone@example.org"},
        "purpose": "operations",
        "content": {"subject": "Clinic closed Friday", "html": "<p>We are closed on Friday.</p>"},
        "encryption_policy": "portal_always",
    }
    response = _client(tenant).post("/api/v1/messages", json.dumps(body), content_type="application/json")
    assert response.status_code == 202, response.content  # the wake-up failed; the row did not
    with tenant_context(tenant):
        assert Message.objects.get(pk=response.json()["id"]).state == Message.State.QUEUED
    woken = []
    delivery_sweep(tenant_ids=[tenant.pk], wake=lambda **wake: woken.append(wake))
    assert woken == [{"tenant_id": tenant.pk, "stream": "transactional"}]


def test_a_named_event_is_accepted_and_its_contact_left_due_for_the_sweeper(tenant):
    from journeys.models import Position
    from tests.journeys.conftest import active_journey, patient

    journey = active_journey(tenant, entry={"kind": "event", "event": "lab_result.ready"})
    contact = patient(tenant)
    body = {"contact_id": str(contact.pk), "type": "lab_result.ready", "id": "lab-1"}
    response = _client(tenant).post("/api/v1/events", json.dumps(body), content_type="application/json")
    assert response.status_code == 202, response.content  # the wake-up failed; the event did not
    with tenant_context(tenant):
        position = Position.objects.get(journey=journey, contact=contact)
        assert position.state == Position.State.WAITING
        assert position.due_at <= timezone.now()  # what journeys_sweep picks up


def test_a_webhook_delivery_survives_its_lost_wake_up(tenant, settings):
    from delivery.webhooks.services import endpoint_create, webhook_deliveries_due, webhook_test_send

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    actor = Actor.system("tests")
    created = endpoint_create(
        tenant=tenant, actor=actor, url="http://127.0.0.1:9/hooks", event_types=["message.delivered"]
    )
    delivery = webhook_test_send(tenant=tenant, actor=actor, endpoint=created.endpoint)
    with tenant_context(tenant):  # the enqueue after commit hit the dead broker; the row is due
        assert delivery.pk in webhook_deliveries_due(tenant_id=tenant.pk)


def test_no_api_route_answers_5xx(tenant):
    client = _client(tenant)
    for path in [route for route in every_route() if is_api_path(route)]:
        for method in ("get", "post"):
            response = getattr(client, method)(path, content_type="application/json")
            assert response.status_code < 500, (method, path, response.status_code)


def test_web_answers_503_with_retry_after_never_500():
    client = Client(raise_request_exception=False)
    for path in [route for route in every_route() if not is_api_path(route)]:
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            assert response.status_code != 500, (method, path)
            if response.status_code >= 500:
                assert response.status_code == 503, (method, path)
                assert response.get("Retry-After") == str(settings.OUTAGE_RETRY_AFTER_SECONDS)
    login = client.post("/login/", {"email": "someone@example.org", "password": "wrong"})
    assert login.status_code == 503  # failed logins are counted in Redis: refused, not counted blind

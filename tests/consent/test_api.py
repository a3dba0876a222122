"""Consent API: record consent events and suppressions with an API key (scope consent:write)."""

from __future__ import annotations

import uuid

import pytest

from consent.gate import may_send
from consent.models import ConsentEvent, Suppression
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem

from .conftest import new_contact
from .scenarios import topic_for

pytestmark = pytest.mark.django_db


def test_recording_a_grant_and_a_revocation(api, issue_key, tenant_a, contact):
    client = api(issue_key(scopes=["consent:write"]))
    body = {
        "contact_id": str(contact.pk),
        "topic": "marketing_newsletters",
        "action": "grant",
        "source": "web_form",
        "ip_address": "203.0.113.5",
        "user_agent": "EHR portal",
    }
    response = client.post("/api/v1/consent/events", body)
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "granted"
    topic = topic_for(tenant_a, "marketing")
    assert may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).allowed
    response = client.post("/api/v1/consent/events", {**body, "action": "revoke"})
    assert response.status_code == 201
    assert (
        may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).code == "opt_in_revoked"
    )
    with tenant_context(tenant_a):
        event = ConsentEvent.objects.filter(kind="revoked").get()
    assert (event.source, event.actor_type, event.ip_address) == ("web_form", "api_key", "203.0.113.5")


def test_idempotency_key_replays_instead_of_recording_twice(api, issue_key, tenant_a, contact):
    client = api(issue_key(scopes=["consent:write"]))
    body = {"contact_id": str(contact.pk), "topic": "research", "action": "revoke", "source": "api"}
    first = client.post("/api/v1/consent/events", body, HTTP_IDEMPOTENCY_KEY="abc-1")
    second = client.post("/api/v1/consent/events", body, HTTP_IDEMPOTENCY_KEY="abc-1")
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    with tenant_context(tenant_a):
        assert ConsentEvent.objects.count() == 1


def test_a_foreign_contact_answers_like_a_missing_one(api, issue_key, tenant_a, tenant_b):
    client = api(issue_key(scopes=["consent:write"]))
    foreign = new_contact(tenant_b)
    answers = []
    for contact_id in (foreign.pk, uuid.uuid4()):
        for path, body in (
            ("/api/v1/consent/events", {"topic": "research", "action": "grant", "source": "api"}),
            ("/api/v1/suppressions", {"reason": "legal_request"}),
        ):
            response = client.post(path, {**body, "contact_id": str(contact_id)})
            answers.append({**assert_problem(response, 404), "request_id": ""})
    assert answers[0] == answers[2]
    assert answers[1] == answers[3]
    with tenant_context(tenant_b):
        assert not ConsentEvent.objects.exists()
        assert not Suppression.objects.exists()


def test_the_scope_is_required(api, issue_key, contact):
    client = api(issue_key(scopes=["contacts:read"]))
    body = {"contact_id": str(contact.pk), "topic": "research", "action": "grant", "source": "api"}
    assert_problem(client.post("/api/v1/consent/events", body), 403)
    assert_problem(client.post("/api/v1/suppressions", {"email": "a@example.org", "reason": "manual"}), 403)


def test_invalid_bodies_answer_422(api, issue_key, contact):
    client = api(issue_key(scopes=["consent:write"]))
    bad = {"contact_id": str(contact.pk), "topic": "research", "action": "maybe", "source": "system"}
    body = assert_problem(client.post("/api/v1/consent/events", bad), 422)
    assert {"action", "source"} <= set(body["errors"])
    assert_problem(client.post("/api/v1/suppressions", {"reason": "manual"}), 422)
    unknown_topic = {"contact_id": str(contact.pk), "topic": "nope", "action": "grant", "source": "api"}
    assert_problem(client.post("/api/v1/consent/events", unknown_topic), 404, "topic_not_found")


def test_adding_a_suppression_by_email_blocks_sending(api, issue_key, tenant_a):
    contact = new_contact(tenant_a, email="bounce@example.org")
    client = api(issue_key(scopes=["consent:write"]))
    response = client.post("/api/v1/suppressions", {"email": "bounce@example.org", "reason": "hard_bounce"})
    assert response.status_code == 201
    # The key may not read PHI: the answer does not say whether the address is a contact's.
    assert (response.json()["contact_id"], response.json()["created_at"]) == (None, None)
    assert may_send(contact=contact, purpose="treatment", uses_phi=False).code == "suppressed_hard_bounce"

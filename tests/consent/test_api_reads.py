"""Consent API reads and suppression removal: a contact's consent state (audited PHI read) and taking
an entry off the suppression list with a reason, after which the gate lets mail through again."""

from __future__ import annotations

import pytest

from consent.gate import may_send
from consent.models import Suppression
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem, audit_events

from .scenarios import topic_for

pytestmark = pytest.mark.django_db


def _grant(client, contact) -> None:
    body = {
        "contact_id": str(contact.pk),
        "topic": "marketing_newsletters",
        "action": "grant",
        "source": "api",
    }
    assert client.post("/api/v1/consent/events", body).status_code == 201


def test_consent_state_shows_topics_and_active_suppressions_and_is_audited(api, issue_key, tenant_a, contact):
    writer = api(issue_key(scopes=["consent:write"]))
    _grant(writer, contact)
    suppressed = writer.post(
        "/api/v1/suppressions", {"contact_id": str(contact.pk), "reason": "legal_request"}
    )
    assert suppressed.status_code == 201

    response = api(issue_key(scopes=["consent:read"])).get(f"/api/v1/contacts/{contact.pk}/consent")

    assert response.status_code == 200
    body = response.json()
    states = {entry["topic"]: entry["status"] for entry in body["topics"]}
    assert states["marketing_newsletters"] == "granted"
    assert [entry["reason"] for entry in body["suppressions"]] == ["legal_request"]
    assert body["suppressions"][0]["id"] == suppressed.json()["id"]
    (read,) = audit_events(tenant=tenant_a, action="phi.read", target_id=str(contact.pk))
    assert read.details["purpose"] == "api consent state"
    assert contact.pk in read.contact_ids


def test_consent_state_needs_consent_read(api, issue_key, contact):
    response = api(issue_key(scopes=["consent:write"])).get(f"/api/v1/contacts/{contact.pk}/consent")
    assert_problem(response, 403, "permission_denied")


def test_removing_a_suppression_lets_mail_through_again_and_is_audited(api, issue_key, tenant_a, contact):
    client = api(issue_key(scopes=["consent:write"]))
    _grant(client, contact)
    entry = client.post("/api/v1/suppressions", {"contact_id": str(contact.pk), "reason": "manual"}).json()
    topic = topic_for(tenant_a, "marketing")
    assert not may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).allowed

    response = client.post(f"/api/v1/suppressions/{entry['id']}/remove", {"reason": "asked for mail again"})

    assert response.status_code == 200, response.content
    assert response.json()["removed_at"]
    assert may_send(contact=contact, purpose="marketing", uses_phi=False, topic=topic).allowed
    with tenant_context(tenant_a):
        stored = Suppression.objects.get(pk=entry["id"])
    assert (stored.removed_reason, stored.removed_by.split(":")[0]) == ("asked for mail again", "api_key")
    (event,) = audit_events(tenant=tenant_a, action="suppression.remove")
    assert event.reason == "asked for mail again"


def test_removing_twice_answers_409_and_a_reason_is_required(api, issue_key, contact):
    client = api(issue_key(scopes=["consent:write"]))
    entry = client.post("/api/v1/suppressions", {"contact_id": str(contact.pk), "reason": "manual"}).json()
    url = f"/api/v1/suppressions/{entry['id']}/remove"

    assert_problem(client.post(url, {}), 422, "validation_failed")
    assert client.post(url, {"reason": "asked for mail again"}).status_code == 200
    assert_problem(client.post(url, {"reason": "again"}), 409, "already_removed")


def test_removing_needs_consent_write(api, issue_key, contact):
    writer = api(issue_key(scopes=["consent:write"]))
    entry = writer.post("/api/v1/suppressions", {"contact_id": str(contact.pk), "reason": "manual"}).json()
    reader = api(issue_key(scopes=["consent:read"]))
    response = reader.post(f"/api/v1/suppressions/{entry['id']}/remove", {"reason": "x"})
    assert_problem(response, 403, "permission_denied")

"""POST /api/v1/messages (+ batch) and GET /api/v1/messages/{id}: accepted at once on the
transactional stream, idempotent, refusals with reasons, PHI read under an audited access."""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from campaigns.models import Template
from consent import suppressions
from consent.models import Suppression
from contacts.models import Contact
from delivery.models import Message, MessageAttempt, Stream
from delivery.outbox import message_content
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem

from .conftest import contacts, template, verified_domain

pytestmark = pytest.mark.django_db
URL = "/api/v1/messages"
REMINDER_HTML = "<p>Hello {{ contact.first_name }}, your appointment is on {{ data.appointment_time }}.</p>"


@pytest.fixture
def setup(tenant_a, team, issue_key, api):
    verified_domain(tenant_a)
    reminder = template(
        tenant_a,
        team["marketer"].actor,
        name="Reminder",
        subject="Appointment reminder",
        html=REMINDER_HTML,
        text="",
        kind=Template.Kind.TRANSACTIONAL,
    )
    [contact_id] = contacts(tenant_a, 1)
    client = api(issue_key(scopes=["messages:send", "messages:read"]))
    return {"template": reminder, "contact_id": contact_id, "client": client}


def _body(setup, **overrides):
    body = {
        "recipient": {"contact_id": str(setup["contact_id"])},
        "purpose": "treatment",
        "template_id": str(setup["template"].pk),
        "data": {"appointment_time": "Monday 9:00"},
    }
    body.update(overrides)
    return body


def test_post_accepts_at_once_on_the_transactional_stream(tenant_a, setup):
    response = setup["client"].post(URL, json.dumps(_body(setup)))
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == {"id", "status", "message_id", "stream"}  # ids only: the replay is stored plain
    assert body["status"] == "queued"
    assert body["stream"] == "transactional"
    with tenant_context(tenant_a):
        message = Message.objects.get(pk=body["id"])
        content = message_content(message)
        event = AuditEvent.objects.filter(action="phi.read", details__purpose="transactional message").get()
    assert message.stream == Stream.TRANSACTIONAL
    assert message.purpose == "treatment"
    assert message.uses_phi
    assert message.contact_id == setup["contact_id"]
    assert "your appointment is on Monday 9:00" in content.html
    assert "Hello Synthetic" in content.html
    assert "Unsubscribe" not in content.html  # transactional: identity and address, no opt-out
    assert set(event.details["fields"]) >= {"email", "first_name"}


def test_same_idempotency_key_returns_the_same_message_once(tenant_a, setup):
    headers = {"HTTP_IDEMPOTENCY_KEY": "ehr-appt-4711"}
    first = setup["client"].post(URL, json.dumps(_body(setup)), **headers)
    second = setup["client"].post(URL, json.dumps(_body(setup)), **headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second["Idempotent-Replayed"] == "true"
    with tenant_context(tenant_a):
        assert Message.objects.filter(source_type="api").count() == 1
    other = setup["client"].post(URL, json.dumps(_body(setup, purpose="payment")), **headers)
    assert_problem(other, 422, "idempotency_key_reused")


def test_inline_content_to_a_bare_address(tenant_a, setup):
    body = {
        "recipient": {"address": "someone.new@example.org"},
        "purpose": "operations",
        "content": {"subject": "Clinic closed Friday", "html": "<p>We are closed on {{ data.day }}.</p>"},
        "data": {"day": "Friday"},
        "encryption_policy": "portal_always",
    }
    response = setup["client"].post(URL, json.dumps(body))
    assert response.status_code == 202, response.content
    with tenant_context(tenant_a):
        message = Message.objects.get(pk=response.json()["id"])
        assert message.contact_id is None
        assert message.encryption_policy == "portal_always"
        assert "We are closed on Friday." in message_content(message).text


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"purpose": "marketing"}, "validation_failed"),
        ({"encryption_policy": "opportunistic"}, "validation_failed"),
        ({"data": {}}, "data_missing"),
        ({"recipient": {"contact_id": "00000000-0000-0000-0000-000000000000"}}, "contact_not_found"),
        (
            {
                "template_id": None,
                "content": {"subject": "Your visit with {{ contact.provider }}", "html": "<p>x</p>"},
            },
            "content_invalid",
        ),
        (
            {"template_id": None, "content": {"subject": "Hi", "html": "{{ ''.__class__ }}"}},
            "content_invalid",
        ),
        (
            {"template_id": None, "content": {"subject": "Hi\r\nBcc: x@example.org", "html": "<p>x</p>"}},
            "content_invalid",
        ),
        ({"tenant_id": "00000000-0000-0000-0000-000000000000"}, "validation_failed"),
    ],
)
def test_bad_requests_are_refused_with_a_reason_and_nothing_is_queued(tenant_a, setup, change, code):
    body = {k: v for k, v in {**_body(setup), **change}.items() if v is not None}
    response = setup["client"].post(URL, json.dumps(body))
    assert_problem(response, 422, code)
    with tenant_context(tenant_a):
        assert not Message.objects.exists()


def test_suppressed_contacts_are_refused_by_the_gate(tenant_a, setup):
    with tenant_context(tenant_a):
        contact = Contact.objects.get(pk=setup["contact_id"])
    suppressions.suppression_add(
        tenant=tenant_a, actor=Actor.system("tests"), reason=Suppression.Reason.HARD_BOUNCE, contact=contact
    )
    response = setup["client"].post(URL, json.dumps(_body(setup)))
    assert_problem(response, 422, "suppressed_hard_bounce")


def test_batch_accepts_and_refuses_per_item(tenant_a, setup):
    good = _body(setup)
    bad = _body(setup, data={})
    response = setup["client"].post(f"{URL}/batch", json.dumps({"messages": [good, bad, "nonsense", good]}))
    assert response.status_code == 202, response.content
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["queued", "refused", "refused", "queued"]
    assert [r["code"] for r in body["results"]] == ["", "data_missing", "validation_failed", ""]
    assert body["accepted"] == 2
    assert body["refused"] == 2


def test_get_returns_status_and_evidence_but_no_content(tenant_a, setup):
    created = setup["client"].post(URL, json.dumps(_body(setup))).json()
    with tenant_context(tenant_a):
        message = Message.objects.get(pk=created["id"])
        Message.objects.filter(pk=message.pk).update(
            state=Message.State.DELIVERED_TLS, evidence={"tls_version": "TLSv1.3", "verified": True}
        )
        from django.utils import timezone

        MessageAttempt.objects.create(
            tenant=tenant_a,
            message=message,
            started_at=timezone.now(),
            outcome="delivered",
            smtp_code=250,
            mx_host="mx.example.org",
            evidence={"cipher": "TLS_AES_256_GCM_SHA384"},
        )
    response = setup["client"].get(f"{URL}/{created['id']}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "delivered_tls"
    assert body["evidence"]["tls_version"] == "TLSv1.3"
    assert body["attempt_log"][0]["mx_host"] == "mx.example.org"
    assert "to_address" not in body
    assert "content" not in body
    assert "Synthetic" not in response.content.decode()


def test_scopes_are_enforced(setup, issue_key, api):
    reader = api(issue_key(scopes=["messages:read"]))
    assert_problem(reader.post(URL, json.dumps(_body(setup))), 403)

"""CommunicationRequest → one transactional message through the messages service (gate, template,
outbox), idempotent by identifier; Communication answers status and delivery evidence."""

from __future__ import annotations

import pytest
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.communicationrequest import CommunicationRequest

from campaigns.models import Template
from consent import suppressions
from delivery.models import Message, MessageAttempt, Stream
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events
from tests.campaigns.conftest import person, template, verified_domain

from .conftest import assert_outcome
from .examples import communication_request, us_patient

pytestmark = pytest.mark.django_db
SENDER = ["contacts:write", "contacts:read", "contacts:phi", "messages:send", "messages:read"]
REMINDER = "<p>Hello {{ contact.first_name }}, your appointment is on {{ data.appointment_time }}.</p>"


@pytest.fixture
def world(tenant_a, fhir):
    verified_domain(tenant_a)
    reminder = template(
        tenant_a,
        person(tenant_a, Role.MARKETER).actor,
        name="Reminder",
        subject="Appointment reminder",
        html=REMINDER,
        text="",
        kind=Template.Kind.TRANSACTIONAL,
    )
    client = fhir(SENDER)
    patient = client.post("Patient", us_patient()).json()
    return {"client": client, "patient_id": patient["id"], "template_id": reminder.pk}


def _request(world, **overrides) -> dict:
    return communication_request(
        patient_id=world["patient_id"], template_id=world["template_id"], **overrides
    )


def _messages(tenant) -> list[Message]:
    with tenant_context(tenant):
        return list(Message.objects.all())


def test_a_request_becomes_one_transactional_message_and_a_retry_finds_it(tenant_a, world):
    first = world["client"].post("CommunicationRequest", _request(world))
    assert first.status_code == 201, first.content
    accepted = CommunicationRequest.model_validate(first.json())
    assert first["Location"].endswith(f"/CommunicationRequest/{accepted.id}")
    [message] = _messages(tenant_a)
    assert message.stream == Stream.TRANSACTIONAL
    assert message.purpose == "treatment"
    assert str(message.contact_id) == world["patient_id"]
    again = world["client"].post("CommunicationRequest", _request(world))
    assert again.status_code == 200
    assert again.json()["id"] == accepted.id
    assert len(_messages(tenant_a)) == 1
    other = world["client"].post("CommunicationRequest", _request(world, identifier="REQ-2"))
    assert other.status_code == 201
    assert len(_messages(tenant_a)) == 2


def test_communication_read_and_search_carry_status_and_delivery_evidence(tenant_a, world):
    accepted = world["client"].post("CommunicationRequest", _request(world)).json()
    [message] = _messages(tenant_a)
    queued = Communication.model_validate(world["client"].get(f"Communication/{message.pk}").json())
    assert queued.status == "preparation"
    assert queued.basedOn[0].reference == f"CommunicationRequest/{accepted['id']}"
    assert queued.subject.reference == f"Patient/{world['patient_id']}"
    assert queued.identifier[0].value == message.message_id
    with tenant_context(tenant_a):
        Message.objects.filter(pk=message.pk).update(
            state=Message.State.DELIVERED_TLS,
            finished_at=timezone.now(),
            evidence={"tls_version": "TLSv1.3", "verified": True},
        )
        MessageAttempt.objects.create(
            tenant=tenant_a,
            message=message,
            started_at=timezone.now(),
            outcome="delivered",
            smtp_code=250,
            mx_host="mx.patients.test",
            evidence={"cipher": "TLS_AES_256_GCM_SHA384"},
        )
    found = world["client"].get("Communication", **{"based-on": f"CommunicationRequest/{accepted['id']}"})
    bundle = Bundle.model_validate(found.json())
    assert bundle.total == 1
    delivered = bundle.entry[0].resource
    assert delivered.status == "completed"
    assert delivered.sent is not None
    evidence = {e.url: e for e in delivered.extension}
    message_evidence = {
        x.url: x for x in evidence[next(u for u in evidence if u.endswith("delivery-evidence"))].extension
    }
    assert message_evidence["tls_version"].valueString == "TLSv1.3"
    assert message_evidence["verified"].valueBoolean is True
    attempt = {x.url: x for x in evidence[next(u for u in evidence if u.endswith("-attempt"))].extension}
    assert attempt["mx_host"].valueString == "mx.patients.test"
    assert attempt["smtp_code"].valueInteger == 250
    assert "Appointment" not in found.content.decode()  # status, never content
    reads = audit_events(tenant=tenant_a, action="phi.read")
    assert reads[-1].details.get("purpose") == "fhir communication read"


def test_the_consent_gate_refuses_a_suppressed_patient(tenant_a, world):
    from contacts.models import Contact
    from healthmail.actors import Actor

    with tenant_context(tenant_a):
        contact = Contact.objects.get(pk=world["patient_id"])
    suppressions.suppression_add(
        tenant=tenant_a, actor=Actor.system("tests"), reason="legal_request", contact=contact
    )
    response = world["client"].post("CommunicationRequest", _request(world))
    body = assert_outcome(response, 422)
    assert "send gate" in body["issue"][0]["diagnostics"]
    assert _messages(tenant_a) == []
    assert audit_events(tenant=tenant_a, action="message.api_accept")[-1].details["refused"] == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (
            {
                "category": [
                    {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HMARKT"}
                        ]
                    }
                ]
            },
            "purpose_not_transactional",
        ),
        ({"category": []}, "purpose_required"),
        ({"status": "draft"}, "status_not_active"),
        ({"payload": [{"contentString": "Hello"}]}, "content_required"),
        ({"subject": {"reference": "Patient/00000000-0000-0000-0000-000000000000"}}, "contact_not_found"),
        ({"subject": {"reference": "Group/1"}}, "recipient_required"),
        ({"priority": 7}, "validation_failed"),
    ],
)
def test_refusals_name_the_reason_and_queue_nothing(tenant_a, world, change, code):
    response = world["client"].post("CommunicationRequest", {**_request(world), **change})
    assert_outcome(response, 422, code)
    assert _messages(tenant_a) == []


def test_scopes_and_foreign_ids(tenant_a, tenant_b, world, fhir):
    assert_outcome(fhir(["messages:read"]).post("CommunicationRequest", _request(world)), 403)
    world["client"].post("CommunicationRequest", _request(world))
    [message] = _messages(tenant_a)
    foreign = fhir(["messages:read"], tenant=tenant_b)
    assert_outcome(foreign.get(f"Communication/{message.pk}"), 404)
    assert_outcome(foreign.get("Communication/not-a-uuid"), 404)
    assert_outcome(foreign.get("Communication", **{"based-on": "Patient/1"}), 422)

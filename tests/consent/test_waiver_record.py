"""A waiver of encryption given on paper or by phone: staff (web form, roles that manage consent)
and integrations (API, consent:write) record it with its evidence, the scan sealed; a foreign
contact answers 404; a tenant turning waivers off and on again revives none."""

from __future__ import annotations

import base64
import datetime
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from audit.phi import phi_access
from consent import services, waivers
from consent.gate import may_send
from consent.models import UnencryptedEmailWaiver, WaiverDocument, WaiverEvent
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem, audit_events
from tests.delivery.patient_mail import patient_mail, patient_sender

from .conftest import new_contact

pytestmark = pytest.mark.django_db

ADMIN, MARKETER, COMPLIANCE, CLINICAL = "tenant_admin", "marketer", "compliance_officer", "clinical_reviewer"
SCAN = b"%PDF-1.4\n% signed waiver form, page 1\n%%EOF\n"


def _waivers(tenant, allowed: bool) -> None:
    services.consent_settings_update(
        tenant=tenant,
        actor=Actor.system("tests"),
        operating_states=[],
        state_mode="strictest",
        allow_unencrypted_waivers=allowed,
        reminder_days_before_expiry=30,
    )


@pytest.fixture
def waivers_on(tenant_a):
    patient_sender(tenant_a)  # codes and confirmations leave from the tenant's verified domain
    _waivers(tenant_a, True)


def _unencrypted(contact) -> bool:
    return may_send(contact=contact, purpose="treatment", uses_phi=True).unencrypted_allowed


def _body(contact, **overrides) -> dict:
    return {
        "contact_id": str(contact.pk),
        "purposes": ["treatment"],
        "source": "paper",
        "received_on": "2024-03-01",
        "document": {
            "name": "waiver-scan.pdf",
            "content_type": "application/pdf",
            "content": base64.b64encode(SCAN).decode(),
        },
        **overrides,
    }


def test_the_api_records_a_paper_waiver_with_its_sealed_scan(
    api, issue_key, tenant_a, contact, waivers_on, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api(issue_key(scopes=["consent:write"])).post(
            "/api/v1/consent/waivers", _body(contact), content_type="application/json"
        )
    assert response.status_code == 201, response.content
    # Paper can be forged and a caller can pretend: the mailbox hears of it, with the undo.
    (confirmation,) = patient_mail()
    assert confirmation.to == [contact.email]
    assert "/p/undo/o." in confirmation.body
    assert "treatment" not in confirmation.body.lower()
    assert response.json()["purposes"] == ["treatment"]
    assert _unencrypted(contact)
    with tenant_context(tenant_a):
        event = WaiverEvent.objects.get(contact=contact)
        document = WaiverDocument.objects.get(waiver_id=response.json()["id"])
        with phi_access(
            actor=Actor.system("tests"),
            tenant=tenant_a,
            objects=[document],
            fields=["content"],
            purpose="test",
        ):
            assert base64.b64decode(document.content) == SCAN
        with connection.cursor() as cursor:
            cursor.execute("SELECT content FROM consent_waiverdocument WHERE id = %s", [document.pk])
            stored = bytes(cursor.fetchone()[0])
    assert SCAN not in stored
    assert base64.b64encode(SCAN) not in stored
    assert (event.source, event.actor_type, event.occurred_at.date().isoformat()) == (
        "paper",
        "api_key",
        "2024-03-01",
    )
    assert event.text_id is not None  # the risk explanation in force is part of the evidence
    assert [e.details["source"] for e in audit_events(tenant=tenant_a, action="waiver.record")] == ["paper"]


def test_the_api_answers_a_foreign_contact_like_a_missing_one(api, issue_key, tenant_a, tenant_b, waivers_on):
    _waivers(tenant_b, True)
    foreign = new_contact(tenant_b)
    client = api(issue_key(scopes=["consent:write"]))
    answers = [
        {
            **assert_problem(
                client.post(
                    "/api/v1/consent/waivers",
                    _body(foreign, contact_id=str(contact_id)),
                    content_type="application/json",
                ),
                404,
            ),
            "request_id": "",
        }
        for contact_id in (foreign.pk, uuid.uuid4())
    ]
    assert answers[0] == answers[1]
    with tenant_context(tenant_b):
        assert not UnencryptedEmailWaiver.objects.exists()


def test_the_api_refuses_without_scope_web_evidence_or_when_waivers_are_off(
    api, issue_key, tenant_a, contact
):
    assert_problem(
        api(issue_key(scopes=["contacts:read"])).post(
            "/api/v1/consent/waivers", _body(contact), content_type="application/json"
        ),
        403,
    )
    client = api(issue_key(scopes=["consent:write"]))
    off = client.post("/api/v1/consent/waivers", _body(contact), content_type="application/json")
    assert assert_problem(off, 400)["code"] == "waivers_off"
    _waivers(tenant_a, True)
    for refused in (_body(contact, source="web_form"), _body(contact, purposes=[])):
        response = client.post("/api/v1/consent/waivers", refused, content_type="application/json")
        assert response.status_code == 422
    bad_scan = _body(contact)
    bad_scan["document"]["content_type"] = "text/html"
    response = client.post("/api/v1/consent/waivers", bad_scan, content_type="application/json")
    assert response.status_code == 422
    assert not _unencrypted(contact)


def test_turning_waivers_off_and_on_again_revives_none(tenant_a, contact, waivers_on):
    waivers.waiver_record(
        tenant=tenant_a,
        actor=Actor.system("tests"),
        contact=contact,
        purposes=["treatment"],
        source="verbal",
        received_on=datetime.date(2024, 1, 1),
    )
    assert _unencrypted(contact)
    _waivers(tenant_a, False)
    assert not _unencrypted(contact)
    _waivers(tenant_a, True)
    assert not _unencrypted(contact)  # the patient must ask again
    with tenant_context(tenant_a):
        kinds = list(WaiverEvent.objects.filter(contact=contact).values_list("kind", flat=True))
    assert kinds == ["requested", "ended"]
    assert len(audit_events(tenant=tenant_a, action="waiver.end_all")) == 1


@pytest.mark.parametrize("role", [ADMIN, MARKETER, COMPLIANCE, CLINICAL])
def test_staff_who_manage_consent_record_a_phone_waiver(member_client, tenant_a, contact, waivers_on, role):
    client = member_client(role)
    page = client.get(reverse("consent:contact_consent", args=[contact.pk])).content.decode()
    allowed = role in {ADMIN, COMPLIANCE}
    assert ("Record a waiver of encryption" in page) is allowed
    response = client.post(
        reverse("consent:contact_waiver_record", args=[contact.pk]),
        {
            "purposes": ["treatment", "payment"],
            "source": "verbal",
            "received_on": "2024-05-02",
            "explained": "on",
            "document": SimpleUploadedFile("scan.pdf", SCAN, content_type="application/pdf"),
        },
    )
    assert response.status_code == (302 if allowed else 403)
    assert _unencrypted(contact) is allowed
    if allowed:
        with tenant_context(tenant_a):
            event = WaiverEvent.objects.get(contact=contact)
            assert WaiverDocument.objects.filter(waiver=event.waiver).count() == 1
        assert (event.source, event.actor_type, event.actor_id) == (
            "verbal",
            "user",
            str(client.membership.user.pk),
        )


def test_staff_recording_needs_the_explanation_and_finds_no_foreign_contact(
    member_client, tenant_a, tenant_b, contact, waivers_on
):
    client = member_client(COMPLIANCE)
    unexplained = {"purposes": ["treatment"], "source": "paper", "received_on": "2024-05-02"}
    client.post(reverse("consent:contact_waiver_record", args=[contact.pk]), unexplained)
    assert not _unencrypted(contact)
    foreign = new_contact(tenant_b)
    for contact_id in (foreign.pk, uuid.uuid4()):
        response = client.post(
            reverse("consent:contact_waiver_record", args=[contact_id]), {**unexplained, "explained": "on"}
        )
        assert response.status_code == 404

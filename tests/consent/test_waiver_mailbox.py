"""Lowering protection from an emailed link takes proof of the mailbox: a stranger holding only a
marketing footer link (forwarded, scanned) cannot switch off encryption; the patient, after the
one-time code, can, and gets a confirmation with a one-click undo. No mail carries PHI."""

from __future__ import annotations

import re
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from consent import services
from consent.gate import may_send
from consent.models import MailboxCheck, UnencryptedEmailWaiver
from consent.tokens import LinkKind, link_token
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events
from tests.delivery.patient_mail import patient_mail, patient_sender

from .conftest import evidence, new_contact

pytestmark = pytest.mark.django_db

REQUEST = {"action": "waiver_request", "purposes": ["treatment"], "understood": "on"}


@pytest.fixture
def waivers_on(tenant_a):
    patient_sender(tenant_a)  # codes and confirmations leave from the tenant's verified domain
    services.consent_settings_update(
        tenant=tenant_a,
        actor=evidence().actor,
        operating_states=[],
        state_mode="strictest",
        allow_unencrypted_waivers=True,
        reminder_days_before_expiry=30,
    )


@pytest.fixture
def patient(tenant_a, waivers_on):
    return new_contact(tenant_a, email=f"pat-{uuid.uuid4().hex[:8]}@patients.example")


def _client() -> Client:
    # Per-address counters live in the shared Redis: each test comes from its own address.
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    return Client(REMOTE_ADDR=address, HTTP_USER_AGENT="pytest")


def _preferences(tenant, contact) -> str:
    token = link_token(LinkKind.PREFERENCES, tenant_id=tenant.pk, contact_id=contact.pk)
    return reverse("consent_public:preferences", args=[token])


def _unencrypted(contact) -> bool:
    return may_send(contact=contact, purpose="treatment", uses_phi=True).unencrypted_allowed


def _code(message) -> str:
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def test_holding_the_footer_link_alone_changes_nothing(tenant_a, patient, django_capture_on_commit_callbacks):
    url = _preferences(tenant_a, patient)
    stranger = _client()
    with django_capture_on_commit_callbacks(execute=True):
        response = stranger.post(url, REQUEST)
    assert response.status_code == 302
    assert not _unencrypted(patient)
    with tenant_context(tenant_a):
        assert not UnencryptedEmailWaiver.objects.filter(contact=patient).exists()
    # The code went to the patient's mailbox, not to whoever holds the link.
    assert [m.to for m in patient_mail()] == [[patient.email]]
    page = stranger.get(url).content.decode()
    assert "One-time code" in page
    assert _code(patient_mail()[0]) not in page
    # Guessing fails, and the code burns after five tries: a new one is needed.
    for guess in ("000000", "111111", "222222", "333333", "444444"):
        refused = stranger.post(url, {"action": "waiver_confirm", "code": guess})
        assert refused.status_code == 400
    right_too_late = stranger.post(url, {"action": "waiver_confirm", "code": _code(patient_mail()[0])})
    assert right_too_late.status_code == 400
    assert "expired or was replaced" in right_too_late.content.decode()
    assert not _unencrypted(patient)
    denied = audit_events(tenant=tenant_a, action="consent.mailbox_check_verify", outcome="denied")
    assert len(denied) == 6


def test_a_confirm_without_a_code_request_is_refused(tenant_a, patient):
    response = _client().post(_preferences(tenant_a, patient), {"action": "waiver_confirm", "code": "123456"})
    assert response.status_code == 400
    assert not _unencrypted(patient)


def test_the_patient_confirms_with_the_code_and_can_undo_in_one_click(
    tenant_a, patient, django_capture_on_commit_callbacks
):
    url = _preferences(tenant_a, patient)
    client = _client()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, REQUEST)
    code = _code(patient_mail()[0])
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(url, {"action": "waiver_confirm", "code": f"{code[:3]} {code[3:]}"})
    assert confirmed.status_code == 302
    assert _unencrypted(patient)

    confirmation = patient_mail()[-1]
    assert confirmation.to == [patient.email]
    assert "changed" in confirmation.subject
    for message in patient_mail():  # neither mail says anything about the patient's care
        text = (message.subject + message.body).lower()
        assert "treatment" not in text
        assert patient.email not in message.body
    undo = re.search(r"https?://\S+/p/undo/\S+/", confirmation.body).group(0)
    undo_path = "/" + undo.split("://", 1)[1].split("/", 1)[1]

    # Link scanners open URLs: a GET shows the button and changes nothing.
    assert "Undo" in client.get(undo_path).content.decode()
    assert _unencrypted(patient)
    done = client.post(undo_path)
    assert done.status_code == 200
    assert "protected again" in done.content.decode()
    assert not _unencrypted(patient)
    assert [e.action for e in audit_events(tenant=tenant_a, action__startswith="waiver.")] == [
        "waiver.request",
        "waiver.withdraw",
    ]
    # An old undo link never touches a later waiver.
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, REQUEST)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"action": "waiver_confirm", "code": _code(patient_mail()[-1])})
    assert _unencrypted(patient)
    client.post(undo_path)
    assert _unencrypted(patient)


def test_a_new_code_replaces_the_previous_one(tenant_a, patient, django_capture_on_commit_callbacks):
    url = _preferences(tenant_a, patient)
    client = _client()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, REQUEST)
        client.post(url, REQUEST)
    first, second = _code(patient_mail()[0]), _code(patient_mail()[1])
    if first != second:
        assert client.post(url, {"action": "waiver_confirm", "code": first}).status_code == 400
    assert client.post(url, {"action": "waiver_confirm", "code": second}).status_code == 302
    assert _unencrypted(patient)
    with tenant_context(tenant_a):
        assert not MailboxCheck.objects.filter(contact=patient, used_at__isnull=True).exists()


def test_code_sends_are_throttled_per_contact(tenant_a, patient, settings):
    settings.PORTAL_CODE_SENDS_PER_LINK = 2
    url = _preferences(tenant_a, patient)
    statuses = [_client().post(url, REQUEST).status_code for _ in range(3)]
    assert statuses == [302, 302, 429]

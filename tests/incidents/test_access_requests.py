"""Right of access (164.524): the 30-day clock and its one extension, the package (record, consents,
authorizations, messages, portal messages) signed and sent through the portal, verified with the
tenant's public key, and every step audited."""

from __future__ import annotations

import datetime
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from delivery.models import EncryptionPolicy, Message
from delivery.outbox import message_content
from healthmail.accounts.roles import Role
from healthmail.crypto import signing
from healthmail.errors import ApplicationError, Conflict, NotFound
from healthmail.tenants.context import tenant_context
from incidents import access_requests
from incidents.models import AccessRequest
from tests.delivery.outbox_helpers import make_message
from tests.delivery.patient_mail import patient_sender

from .helpers import officer, patients

pytestmark = pytest.mark.django_db
OFFICER = Role.COMPLIANCE_OFFICER
D = datetime.date


@pytest.mark.parametrize(
    ("received", "extended", "due"),
    [
        (D(2026, 12, 15), False, D(2027, 1, 14)),  # across a year end
        (D(2028, 2, 1), False, D(2028, 3, 2)),  # leap February
        (D(2027, 2, 1), False, D(2027, 3, 3)),
        (D(2026, 12, 15), True, D(2027, 2, 13)),  # one extension: 30 more days
    ],
)
def test_the_clock_is_thirty_days_and_one_extension(received, extended, due):
    assert access_requests.due_on(received, extended=extended) == due


def test_the_extension_is_once_and_only_within_the_first_thirty_days():
    received = D(2026, 1, 1)
    assert access_requests.extension_allowed(received, D(2026, 1, 31), extended=False)
    assert not access_requests.extension_allowed(received, D(2026, 2, 1), extended=False)
    assert not access_requests.extension_allowed(received, D(2026, 1, 5), extended=True)


def test_extension_needs_reasons_and_happens_once(tenant_a):
    user = officer(tenant_a)
    (patient,) = patients(tenant_a, 1, label="ext")
    request = access_requests.access_request_record(
        tenant=tenant_a, user=user, role=OFFICER, contact_id=patient.pk, received_on=timezone.localdate()
    )
    with pytest.raises(ApplicationError, match="reasons"):
        access_requests.access_request_extend(
            tenant=tenant_a, user=user, role=OFFICER, request=request, reason="busy"
        )
    request = access_requests.access_request_extend(
        tenant=tenant_a,
        user=user,
        role=OFFICER,
        request=request,
        reason="Records are being retrieved from the archive.",
    )
    assert request.status == AccessRequest.Status.EXTENDED
    with pytest.raises(Conflict):
        access_requests.access_request_extend(
            tenant=tenant_a,
            user=user,
            role=OFFICER,
            request=request,
            reason="Records are still being retrieved.",
        )


def test_a_late_extension_is_refused(tenant_a):
    user = officer(tenant_a)
    (patient,) = patients(tenant_a, 1, label="late")
    request = access_requests.access_request_record(
        tenant=tenant_a,
        user=user,
        role=OFFICER,
        contact_id=patient.pk,
        received_on=timezone.localdate() - datetime.timedelta(days=31),
    )
    with pytest.raises(Conflict, match="only before"):
        access_requests.access_request_extend(
            tenant=tenant_a,
            user=user,
            role=OFFICER,
            request=request,
            reason="Records are being retrieved from the archive.",
        )


def test_a_foreign_patient_cannot_be_named(tenant_a, tenant_b):
    (foreign,) = patients(tenant_b, 1, label="for")
    with pytest.raises(NotFound):
        access_requests.access_request_record(
            tenant=tenant_a,
            user=officer(tenant_a),
            role=OFFICER,
            contact_id=foreign.pk,
            received_on=timezone.localdate(),
        )


def test_the_package_is_signed_sent_through_the_portal_and_verifies(tenant_a, tenant_b):
    user = officer(tenant_a)
    patient_sender(tenant_a)
    (patient,) = patients(tenant_a, 1, label="pkg")
    make_message(tenant_a, contact_id=patient.pk, address="pkg0@patients.example")
    request = access_requests.access_request_record(
        tenant=tenant_a, user=user, role=OFFICER, contact_id=patient.pk, received_on=timezone.localdate()
    )
    request = access_requests.access_request_deliver(
        tenant=tenant_a, user=user, role=OFFICER, request=request
    )
    assert request.status == AccessRequest.Status.DELIVERED
    with tenant_context(tenant_a):
        message = Message.objects.get(pk=request.message_id)
        public_key = signing.signing_key_current(tenant_a).public_key
        other_key = None
    with tenant_context(tenant_b):
        other_key = signing.signing_key_current(tenant_b).public_key
    assert message.encryption_policy == EncryptionPolicy.PORTAL_ALWAYS
    assert message.contact_id == patient.pk
    text = message_content(message).text
    signed = json.loads(text[text.index("{") :])
    package = signed["package"]
    assert package["contact_record"]["email"] == "pkg0@patients.example"
    assert len(package["messages"]) == 1
    assert {"consents", "authorizations", "messages", "contact_record"} <= set(package)
    assert access_requests.package_verify(signed, public_key=public_key)
    assert not access_requests.package_verify(signed, public_key=other_key)
    signed["package"]["contact_record"]["email"] = "someone.else@example.org"
    assert not access_requests.package_verify(signed, public_key=public_key)
    with pytest.raises(Conflict):
        access_requests.access_request_deliver(tenant=tenant_a, user=user, role=OFFICER, request=request)
    with tenant_context(tenant_a):
        actions = list(
            AuditEvent.objects.filter(target_type="incidents.accessrequest", target_id=str(request.pk))
            .order_by("id")
            .values_list("action", flat=True)
        )
        reads = AuditEvent.objects.filter(action="phi.read", details__purpose=access_requests.PURPOSE)
        assert reads.count() == 2  # the record, the messages
    assert actions == ["access_request.record", "access_request.deliver"]


def test_the_page_records_and_refuses_foreign_ids(member_client, tenant_a, tenant_b):
    client = member_client(OFFICER)
    (patient,) = patients(tenant_a, 1, label="page")
    url = reverse("incidents:access_requests")
    assert client.get(url).status_code == 200
    response = client.post(
        url, {"contact_id": str(patient.pk), "received_on": timezone.localdate().isoformat()}
    )
    assert response.status_code == 302
    (foreign,) = patients(tenant_b, 1, label="pagef")
    refused = client.post(
        url, {"contact_id": str(foreign.pk), "received_on": timezone.localdate().isoformat()}
    )
    assert refused.status_code == 400
    assert refused.context["form"].errors["contact_id"] == ["No such patient in this organization."]
    other = access_requests.access_request_record(
        tenant=tenant_b,
        user=officer(tenant_b),
        role=OFFICER,
        contact_id=foreign.pk,
        received_on=timezone.localdate(),
    )
    for name in ("access_request_extend", "access_request_deliver"):
        assert client.post(reverse(f"incidents:{name}", args=[other.pk])).status_code == 404
    for role in (Role.TENANT_ADMIN, Role.MARKETER, Role.CLINICAL_REVIEWER):
        assert member_client(role).get(url).status_code == 403

"""Mail to patients that no campaign sends (one-time codes, confirmations, reminders) leaves like all
patient mail: from the tenant's verified sender domain, DKIM-signed with the tenant's key, through the
delivery engine; never through the platform's system-mail outbox. A tenant without a verified sender
domain is refused with a clear message and nothing is half written."""

from __future__ import annotations

import datetime
import email
import email.policy
import re
import uuid

import dkim as dkimpy
import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consent import mailbox, waivers
from consent.evidence import ConsentError
from consent.models import MailboxCheck, UnencryptedEmailWaiver
from consent.tokens import LinkKind, link_token
from delivery import dkim
from delivery.engine.worker import drain
from delivery.models import Message, PortalCode, PortalMessage, SenderDomain, Stream
from delivery.outbox import message_content
from delivery.portal.services import portal_deliver
from delivery.portal.verification import portal_code_send
from healthmail.actors import Actor
from healthmail.sysmail.models import SystemMail
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events
from tests.consent.conftest import evidence as consent_evidence
from tests.sysmail.outbox import deliver_system_mail

from .engine_support import dependencies, new_contact, reload, verified_sender_domain
from .outbox_helpers import make_message
from .patient_mail import patient_mail

pytestmark = pytest.mark.django_db
State = Message.State


def _portal_message(tenant, address: str, *, sender_domain=None):
    message = make_message(tenant, address=address)
    if sender_domain is not None:
        with tenant_context(tenant):
            Message.objects.filter(pk=message.pk).update(sender_domain=sender_domain)
        message.sender_domain = sender_domain
    with tenant_context(tenant):
        notice = portal_deliver(message, message_content(message))
        return PortalMessage.objects.get(message_id=message.pk), notice


def _parsed(received):
    return email.message_from_bytes(received.content, policy=email.policy.SMTP)


def _dkim_ok(received, public_key: str) -> bool:
    return dkimpy.verify(
        received.content, dnsfunc=lambda name, timeout=5: dkim.dns_record(public_key).encode()
    )


def _no_system_mail(tenant) -> None:
    """Nothing of it went the platform's way: no system-mail row, nothing sent by Django's mailer."""
    with tenant_context(tenant):
        assert not SystemMail.objects.exists()
    mail.outbox = []
    deliver_system_mail(tenant)
    assert mail.outbox == []


def _drain_codes(tenant, kit, transport):
    """Run the engine's transactional stream: the portal's PHI message has no sender domain in these
    tests and fails; the codes are what is looked at."""
    drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))


def test_the_portal_code_arrives_from_the_tenant_domain_signed_with_its_key(tenant_a, kit, transport):
    sender_domain, public_key = verified_sender_domain(tenant_a)
    portal_message, _notice = _portal_message(tenant_a, "zeb@good.test")

    with tenant_context(tenant_a):
        portal_code_send(portal_message=portal_message, ip=None)
    _drain_codes(tenant_a, kit, transport)

    (queued,) = patient_mail(to="zeb@good.test")
    (code_row,) = reload(tenant_a, [queued.message])
    # Opportunistic: encrypted because the domain offers STARTTLS (not verified, as nothing needs it).
    assert code_row.state == State.DELIVERED_UNVERIFIED, code_row.state_reason
    assert code_row.evidence["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
    (received,) = [m for m in kit["good"].messages if b"one-time code" in m.content]
    assert b"one-time code" not in kit["good"].wire  # not readable on the wire
    parsed = _parsed(received)
    assert parsed["From"].addresses[0].domain == sender_domain.domain
    assert parsed["From"].addresses[0].display_name == tenant_a.name
    assert received.rcpt_tos == ["zeb@good.test"]
    assert received.mail_from.endswith("@" + sender_domain.domain)  # VERP: bounces come back to us
    assert _dkim_ok(received, public_key)
    # The code in the mail is the one the portal accepts.
    code = re.search(rb"one-time code is (\d{6})", received.content).group(1).decode()
    assert code in queued.body
    _no_system_mail(tenant_a)


def test_the_signature_is_the_tenants_own(tenant_a, tenant_b, kit, transport):
    """Checked against another tenant's key the signature fails: it is not a platform-wide key."""
    verified_sender_domain(tenant_a)
    _other_domain, other_key = verified_sender_domain(tenant_b, "mail.clinic-b.test")
    portal_message, _notice = _portal_message(tenant_a, "zeb@good.test")
    with tenant_context(tenant_a):
        portal_code_send(portal_message=portal_message, ip=None)
    _drain_codes(tenant_a, kit, transport)
    (received,) = [m for m in kit["good"].messages if b"one-time code" in m.content]
    assert not _dkim_ok(received, other_key)


def test_the_code_comes_from_the_domain_that_sent_the_notice(tenant_a):
    verified_sender_domain(tenant_a, "a-first.clinic-a.test")
    notice_domain, _ = verified_sender_domain(tenant_a, "z-notices.clinic-a.test")
    portal_message, _notice = _portal_message(tenant_a, "zeb@good.test", sender_domain=notice_domain)
    with tenant_context(tenant_a):
        portal_code_send(portal_message=portal_message, ip=None)
    (queued,) = patient_mail(to="zeb@good.test")
    assert queued.from_domain == "z-notices.clinic-a.test"


def test_a_mailbox_code_reaches_a_domain_without_tls_and_carries_no_phi(tenant_a, kit, transport):
    """The documented choice: a code holds no PHI and cannot fall back to the portal it opens, so it
    goes by TLS when offered and in the clear otherwise, still signed."""
    sender_domain, public_key = verified_sender_domain(tenant_a)
    patient = new_contact(tenant_a, "pat@plain.test")
    with tenant_context(tenant_a):
        mailbox.mailbox_check_start(
            tenant=tenant_a,
            contact=patient,
            action=MailboxCheck.Action.WAIVER_REQUEST,
            purposes=["treatment"],
            evidence=consent_evidence(),
        )
    _drain_codes(tenant_a, kit, transport)

    (queued,) = patient_mail(to="pat@plain.test")
    (row,) = reload(tenant_a, [queued.message])
    assert (row.state, row.stream, row.purpose, row.uses_phi) == (
        State.DELIVERED_UNVERIFIED,
        Stream.TRANSACTIONAL,
        "operations",
        False,
    )
    (received,) = kit["plain"].messages
    assert _parsed(received)["From"].addresses[0].domain == sender_domain.domain
    assert _parsed(received)["List-Unsubscribe"] is None  # an operations mail, not marketing
    assert _dkim_ok(received, public_key)
    _no_system_mail(tenant_a)


def test_a_code_that_expired_before_sending_is_never_sent(tenant_a, kit, transport):
    verified_sender_domain(tenant_a)
    portal_message, _notice = _portal_message(tenant_a, "zeb@good.test")
    with tenant_context(tenant_a):
        portal_code_send(portal_message=portal_message, ip=None)
        code_expiry = PortalCode.objects.get().expires_at
    (queued,) = patient_mail(to="zeb@good.test")
    assert queued.message.expires_at == code_expiry  # the mail lives as long as its code
    with tenant_context(tenant_a):
        Message.objects.filter(pk=queued.message.pk).update(
            expires_at=queued.message.created_at - datetime.timedelta(seconds=1)
        )
    _drain_codes(tenant_a, kit, transport)
    (row,) = reload(tenant_a, [queued.message])
    assert row.state == State.EXPIRED
    assert not [m for m in kit["good"].messages if b"one-time code" in m.content]


def test_a_code_asked_for_while_the_mail_server_refuses_arrives_on_the_retry(tenant_a, kit, transport):
    """The page said "sent" and the engine owns the retry (4xx -> deferred, same Message-ID)."""
    verified_sender_domain(tenant_a)
    portal_message, _notice = _portal_message(tenant_a, "zeb@tempfail.test")
    with tenant_context(tenant_a):
        portal_code_send(portal_message=portal_message, ip=None)
    _drain_codes(tenant_a, kit, transport)
    (queued,) = patient_mail(to="zeb@tempfail.test")
    (row,) = reload(tenant_a, [queued.message])
    assert row.state == State.DEFERRED, row.state_reason
    with tenant_context(tenant_a):
        Message.objects.filter(pk=row.pk).update(not_before=None)
    _drain_codes(tenant_a, kit, transport)
    (row,) = reload(tenant_a, [row])
    assert row.state == State.DELIVERED_UNVERIFIED, row.state_reason
    received = [m for m in kit["tempfail"].messages if b"one-time code" in m.content]
    assert len(received) == 1
    assert _parsed(received[0])["Message-ID"] == row.message_id


# --- a tenant without a verified sender domain --------------------------------------------------------


def _client() -> Client:
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    return Client(REMOTE_ADDR=address, HTTP_USER_AGENT="pytest")


def test_portal_code_without_a_verified_domain_is_refused_clearly(tenant_a):
    with tenant_context(tenant_a):
        SenderDomain.objects.create(tenant=tenant_a, domain="mail.clinic-a.test")  # added, not verified
    _portal_message_row, notice = _portal_message(tenant_a, "zeb@patients.example")
    path = "/" + notice.portal_url.split("://", 1)[1].split("/", 1)[1]

    response = _client().post(path + "code/")

    assert response.status_code == 409
    page = response.content.decode()
    assert "cannot send email to you right now" in page
    assert f"Please contact {tenant_a.name} directly" in page
    assert patient_mail(to="zeb@patients.example") == []
    with tenant_context(tenant_a):
        assert not PortalCode.objects.exists()  # no code that nobody received
    (denied,) = audit_events(tenant=tenant_a, action="portal.code_send", outcome="denied")
    assert denied.reason == "sender_domain_unverified"
    _no_system_mail(tenant_a)


def test_preference_center_code_without_a_verified_domain_is_refused_clearly(tenant_a):
    from consent import services as consent_services

    consent_services.consent_settings_update(
        tenant=tenant_a,
        actor=consent_evidence().actor,
        operating_states=[],
        state_mode="strictest",
        allow_unencrypted_waivers=True,
        reminder_days_before_expiry=30,
    )
    patient = new_contact(tenant_a, "pat@patients.example")
    token = link_token(LinkKind.PREFERENCES, tenant_id=tenant_a.pk, contact_id=patient.pk)
    url = reverse("consent_public:preferences", args=[token])

    response = _client().post(
        url, {"action": "waiver_request", "purposes": ["treatment"], "understood": "on"}
    )

    assert response.status_code == 409
    assert "cannot send email to you right now" in response.content.decode()
    with tenant_context(tenant_a):
        assert not MailboxCheck.objects.exists()
    assert patient_mail() == []
    _no_system_mail(tenant_a)


def test_staff_cannot_record_a_waiver_the_mailbox_would_never_hear_of(tenant_a):
    from consent import services as consent_services
    from consent.models import Source

    consent_services.consent_settings_update(
        tenant=tenant_a,
        actor=consent_evidence().actor,
        operating_states=[],
        state_mode="strictest",
        allow_unencrypted_waivers=True,
        reminder_days_before_expiry=30,
    )
    patient = new_contact(tenant_a, "pat@patients.example")
    with pytest.raises(ConsentError, match="no verified sender domain") as refused, tenant_context(tenant_a):
        waivers.waiver_record(
            tenant=tenant_a,
            actor=Actor.system("tests"),
            contact=patient,
            purposes=["treatment"],
            source=Source.VERBAL,
            received_on=timezone.localdate(),
        )
    assert refused.value.code == "sender_domain_unverified"
    with tenant_context(tenant_a):
        assert not UnencryptedEmailWaiver.objects.exists()  # nothing half written

"""The engine end to end against the loopback servers: verified TLS delivers the content with evidence;
no verified TLS means the portal notice (or failure, or the patient's waiver), never PHI in the clear;
the send gate is re-checked right before sending."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import dkim as dkimpy
import pytest
from django.utils import timezone

from consent import services as consent
from consent import waivers
from consent.gate import may_send
from consent.models import ConsentSettings, ConsentText, Suppression
from delivery import dkim
from delivery.engine.worker import drain
from delivery.inbound.verp import VerpAddress, verp_address, verp_parse
from delivery.models import (
    DeliveryReport,
    DomainPause,
    EncryptionPolicy,
    Message,
    MessageAttempt,
    SenderFeedback,
    Stream,
)
from delivery.outbox import OutboxRecipient, message_enqueue_many
from delivery.portal.services import PortalNotice
from healthmail.tenants.context import tenant_context

from .conftest import PHI_DIAGNOSIS, PHI_NAME
from .engine_support import (
    PHI_CONTENT,
    SENDER,
    enqueue,
    evidence,
    new_contact,
    opted_in,
    relay_stream,
    reload,
    verified_sender_domain,
)
from .engine_support import dependencies as make_dependencies

pytestmark = pytest.mark.django_db
State = Message.State
PORTAL_URL = "https://portal.healthmail.test/m/opaque-token"


class PortalStub:
    """Stands in for delivery.portal.services.portal_deliver: records what it was given."""

    def __init__(self):
        self.held = []

    def __call__(self, message, content):
        self.held.append((message.pk, content))
        return PortalNotice(
            subject="You have a secure message",
            html=f'<p>Read it in the secure portal: <a href="{PORTAL_URL}">open</a></p>',
            text=f"Read it in the secure portal: {PORTAL_URL}\n",
            portal_url=PORTAL_URL,
        )


@pytest.fixture
def sender(tenant_a):
    return verified_sender_domain(tenant_a)


@pytest.fixture
def portal():
    return PortalStub()


@pytest.fixture
def deps(kit, transport, portal):
    return make_dependencies(kit, transport, portal=portal)


def _drain(tenant, deps, stream=Stream.TRANSACTIONAL):
    return drain(tenant_id=tenant.pk, stream=stream, deps=deps)


def _parsed(received):
    return email.message_from_bytes(received.content, policy=email.policy.SMTP)


def test_verified_tls_delivers_the_content_signed_with_evidence(tenant_a, sender, kit, deps):
    sender_domain, public_key = sender
    (message,) = enqueue(tenant_a, ["zebediah@good.test"], sender_domain=sender_domain)

    report = _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert (message.state, message.attempts, message.path) == (State.DELIVERED_TLS, 1, "direct")
    assert report.states == {State.DELIVERED_TLS: 1}
    tls = message.evidence["tls"]
    assert tls["verified"]
    assert tls["method"] == "pkix"
    assert tls["mx"] == "mx.good.test"
    assert tls["version"] in ("TLSv1.2", "TLSv1.3")
    assert tls["requiretls"] is True
    assert message.evidence["policy"]["source"] == "starttls-probe"
    (received,) = kit["good"].messages
    assert received.rcpt_tos == ["zebediah@good.test"]
    # VERP: the tenant and the row, not the person
    assert received.mail_from == verp_address(
        prefix="bounce-t", tenant_id=message.tenant_id, message_id=message.pk, domain=SENDER
    )
    assert verp_parse(received.mail_from) == VerpAddress(message.pk, message.tenant_id)
    parsed = _parsed(received)
    assert parsed["Message-ID"] == message.message_id
    assert parsed["From"].addresses[0].domain == SENDER
    assert parsed["Feedback-ID"].endswith(":hm-transactional")
    assert parsed["List-Unsubscribe"] is None  # transactional mail has none
    assert PHI_DIAGNOSIS.encode() not in kit["good"].wire  # encrypted on the wire
    assert dkimpy.verify(
        received.content, dnsfunc=lambda name, timeout=5: dkim.dns_record(public_key).encode()
    )
    with tenant_context(tenant_a):
        (attempt,) = MessageAttempt.objects.filter(message=message)
    assert (attempt.outcome, attempt.smtp_code, attempt.mx_host) == ("delivered", 250, "mx.good.test")


@pytest.mark.parametrize("kind", ["plain", "untrusted", "selfsigned", "expired", "oldtls"])
def test_without_verified_tls_phi_goes_to_the_portal_never_in_the_clear(
    tenant_a, sender, kit, deps, portal, kind
):
    sender_domain, _ = sender
    (message,) = enqueue(tenant_a, [f"zebediah@{kind}.test"], sender_domain=sender_domain)

    _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.DELIVERED_PORTAL, message.state_reason
    assert message.path == "portal"
    assert message.evidence["refused"][0]["path"] == "direct"
    assert portal.held[0][0] == message.pk
    assert PHI_NAME in portal.held[0][1].text
    server = kit[kind]
    for secret in (PHI_NAME.encode(), PHI_DIAGNOSIS.encode(), b"care team"):
        assert not server.saw(secret), secret  # neither on the wire nor after decryption
    (notice,) = server.messages  # the notice, without PHI, went by the opportunistic path
    assert PORTAL_URL.encode() in notice.content
    assert _parsed(notice)["Message-ID"] == message.message_id
    with tenant_context(tenant_a):
        outcomes = list(MessageAttempt.objects.filter(message=message).values_list("outcome", "path"))
    assert outcomes == [("refused", "direct"), ("delivered", "portal")]


def test_portal_always_never_sends_the_content(tenant_a, sender, kit, deps, portal):
    sender_domain, _ = sender
    (message,) = enqueue(
        tenant_a, ["zebediah@good.test"], sender_domain=sender_domain, policy=EncryptionPolicy.PORTAL_ALWAYS
    )

    _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.DELIVERED_PORTAL
    # The notice carries no PHI: opportunistic TLS (encrypted here, not authenticated) is enough.
    assert message.evidence["tls"]["tls"]
    assert message.evidence["tls"]["method"] == "opportunistic"
    assert not kit["good"].saw(PHI_NAME.encode())
    assert len(portal.held) == 1


def test_tls_else_fail_fails_with_the_reason(tenant_a, sender, kit, deps, portal):
    sender_domain, _ = sender
    (message,) = enqueue(
        tenant_a, ["zebediah@plain.test"], sender_domain=sender_domain, policy=EncryptionPolicy.TLS_ELSE_FAIL
    )

    _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.FAILED
    assert "STARTTLS not offered" in message.state_reason
    assert kit["plain"].messages == []
    assert portal.held == []


def test_without_a_portal_phi_waits_instead_of_leaving(tenant_a, sender, kit, transport):
    sender_domain, _ = sender
    (message,) = enqueue(tenant_a, ["zebediah@plain.test"], sender_domain=sender_domain)

    _drain(tenant_a, make_dependencies(kit, transport, portal=None))

    (message,) = reload(tenant_a, [message])
    assert message.state == State.DEFERRED
    assert "portal" in message.state_reason
    assert kit["plain"].messages == []


def test_the_real_portal_holds_the_content_and_the_notice_carries_no_phi(tenant_a, sender, kit, transport):
    from delivery.portal.services import portal_deliver

    sender_domain, _ = sender
    (message,) = enqueue(tenant_a, ["zebediah@plain.test"], sender_domain=sender_domain)

    _drain(tenant_a, make_dependencies(kit, transport, portal=portal_deliver))

    (message,) = reload(tenant_a, [message])
    assert message.state == State.DELIVERED_PORTAL, message.state_reason
    (notice,) = kit["plain"].messages
    assert not kit["plain"].saw(PHI_NAME.encode())
    assert not kit["plain"].saw(PHI_DIAGNOSIS.encode())
    assert b"http" in notice.content  # the portal link


def test_a_waiver_is_the_only_way_to_unencrypted_phi(tenant_a, sender, kit, deps, portal):
    sender_domain, _ = sender
    contact = new_contact(tenant_a, "zebediah@plain.test")
    with tenant_context(tenant_a):
        ConsentSettings.objects.update_or_create(
            tenant=tenant_a, defaults={"allow_unencrypted_waivers": True}
        )
    risk = consent.consent_text_publish(
        tenant=tenant_a,
        actor=evidence().actor,
        kind=ConsentText.Kind.UNENCRYPTED_WAIVER,
        body="Email is not secure.",
    )
    waivers.waiver_request(
        tenant=tenant_a,
        contact=contact,
        purposes=["treatment"],
        evidence=consent.Evidence(source="web_form", actor=evidence().actor, text=risk),
    )
    (waived,) = message_enqueue_many(
        tenant=tenant_a, stream=Stream.TRANSACTIONAL, source_type="api", source_id="w", purpose="treatment",
        recipients=[OutboxRecipient(contact.pk, "zebediah@plain.test")], sender_domain=sender_domain,
        content=PHI_CONTENT,
    )  # fmt: skip

    _drain(tenant_a, deps)

    (waived,) = reload(tenant_a, [waived])
    assert waived.state == State.DELIVERED_WAIVER
    assert waived.evidence["waiver"]
    assert waived.evidence["tls"]["verified"] is False
    assert kit["plain"].saw(PHI_NAME.encode())  # as the patient asked, after being told the risk
    assert portal.held == []


def test_revocation_after_queueing_stops_the_send(tenant_a, sender, kit, deps):
    sender_domain, _ = sender
    contact = new_contact(tenant_a, "zebediah@good.test")
    topic = opted_in(tenant_a, contact)
    (message,) = message_enqueue_many(
        tenant=tenant_a, stream=Stream.MARKETING, source_type="campaign", source_id="c1", purpose="marketing",
        topic=topic.key, uses_phi=False, recipients=[OutboxRecipient(contact.pk, "zebediah@good.test")],
        sender_domain=sender_domain, content=PHI_CONTENT,
    )  # fmt: skip
    consent.consent_revoke(tenant=tenant_a, contact=contact, topic=topic, evidence=evidence())

    _drain(tenant_a, deps, Stream.MARKETING)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.SUPPRESSED
    assert message.state_reason.startswith("opt_in_revoked")
    assert kit["good"].messages == []
    assert kit["good"].connections == 0


def test_marketing_mail_carries_one_click_unsubscribe_under_the_signature(tenant_a, sender, kit, deps):
    sender_domain, public_key = sender
    contact = new_contact(tenant_a, "zebediah@plain.test")
    topic = opted_in(tenant_a, contact)
    (message,) = message_enqueue_many(
        tenant=tenant_a, stream=Stream.MARKETING, source_type="campaign", source_id="c2", purpose="marketing",
        topic=topic.key, uses_phi=False, encryption_policy=EncryptionPolicy.OPPORTUNISTIC,
        recipients=[OutboxRecipient(contact.pk, "zebediah@plain.test")], sender_domain=sender_domain,
        content=PHI_CONTENT,
    )  # fmt: skip

    _drain(tenant_a, deps, Stream.MARKETING)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.DELIVERED_UNVERIFIED  # non-PHI, opportunistic: no TLS on offer
    (received,) = kit["plain"].messages
    parsed = _parsed(received)
    assert parsed["List-Unsubscribe"].startswith("<http")
    assert "/unsubscribe/" in parsed["List-Unsubscribe"]
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # On the wire as a plain URL (RFC 2369/8058), not folded into RFC 2047 encoded words.
    assert b"\r\nList-Unsubscribe: <http" in received.content
    assert b"=?utf-8?" not in received.content
    assert received.mail_from.startswith("bounce-m+")  # the marketing identity, not the transactional one
    signature = parsed["DKIM-Signature"]
    assert "list-unsubscribe:list-unsubscribe-post" in signature.replace(" ", "")
    assert dkimpy.verify(
        received.content, dnsfunc=lambda name, timeout=5: dkim.dns_record(public_key).encode()
    )


def test_an_unverified_sender_domain_is_refused(tenant_a, kit, deps):
    from delivery.sender_domains.services import sender_domain_add

    with tenant_context(tenant_a):
        unverified = sender_domain_add(
            tenant=tenant_a, actor=evidence().actor, domain="unverified.clinic-a.test"
        )
    (message,) = enqueue(tenant_a, ["zebediah@good.test"], sender_domain=unverified)

    _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.FAILED
    assert "not verified" in message.state_reason
    assert kit["good"].messages == []
    assert b"MAIL FROM" not in kit["good"].wire


def test_a_hard_bounce_is_final_and_suppresses_the_address(tenant_a, sender, kit, deps):
    sender_domain, _ = sender
    (message,) = enqueue(tenant_a, ["zebediah@reject.test"], sender_domain=sender_domain)

    _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert (message.state, message.attempts) == (State.BOUNCED, 1)
    assert message.state_reason.startswith("550")
    assert "@" not in message.state_reason
    with tenant_context(tenant_a):
        suppression = Suppression.objects.get(contact_id=message.contact_id)
        contact = message.contact
    assert suppression.reason == Suppression.Reason.HARD_BOUNCE
    assert may_send(contact=contact, purpose="treatment", uses_phi=True).code == "suppressed_hard_bounce"


def test_an_in_session_dmarc_refusal_fails_the_message_and_never_suppresses_the_patient(
    tenant_a, sender, kit, deps
):
    sender_domain, _ = sender
    (message,) = enqueue(tenant_a, ["zebediah@dmarc.test"], sender_domain=sender_domain)

    _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.FAILED
    assert "dmarc" in message.state_reason
    with tenant_context(tenant_a):
        assert not Suppression.objects.filter(contact_id=message.contact_id).exists()
        contact = message.contact
        [health] = SenderFeedback.objects.filter(tenant=tenant_a)
    assert may_send(contact=contact, purpose="treatment", uses_phi=True).allowed
    assert (health.kind, health.cause, health.status) == ("rejection", "dmarc", "5.7.26")
    assert (health.domain, health.receiving_domain) == (sender_domain.domain, "dmarc.test")


def test_temporary_sender_refusals_are_retried_and_pause_the_domain_not_the_patient(
    tenant_a, sender, kit, deps, settings
):
    settings.DELIVERY_SENDER_REJECTION_THRESHOLD = 1
    sender_domain, _ = sender
    (message,) = enqueue(tenant_a, ["zebediah@dmarctemp.test"], sender_domain=sender_domain)

    _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.DEFERRED  # a 4xx: tried again later
    with tenant_context(tenant_a):
        assert not Suppression.objects.filter(contact_id=message.contact_id).exists()
        assert not DeliveryReport.objects.filter(
            message=message, kind=DeliveryReport.Kind.SOFT_BOUNCE
        ).exists()
        [health] = SenderFeedback.objects.filter(tenant=tenant_a)
        pause = DomainPause.objects.get(tenant=tenant_a, receiving_domain="dmarctemp.test")
    assert (health.cause, health.status) == ("dmarc", "4.7.26")
    assert pause.stream == "transactional"


def test_an_in_session_mailbox_full_is_a_soft_bounce_not_a_suppression(tenant_a, sender, kit, deps):
    sender_domain, _ = sender
    (message,) = enqueue(tenant_a, ["zebediah@full.test"], sender_domain=sender_domain)

    _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.BOUNCED
    with tenant_context(tenant_a):
        assert not Suppression.objects.filter(contact_id=message.contact_id).exists()
        assert DeliveryReport.objects.get(message=message).kind == DeliveryReport.Kind.SOFT_BOUNCE


def test_a_paused_receiving_domain_holds_the_stream_and_loses_nothing(tenant_a, sender, kit, deps):
    sender_domain, _ = sender
    until = timezone.now() + timedelta(hours=1)
    with tenant_context(tenant_a):
        DomainPause.objects.create(
            tenant=tenant_a,
            stream="transactional",
            receiving_domain="good.test",
            paused_until=until,
            reason="dmarc refusals (5.7.26)",
        )
    (message,) = enqueue(tenant_a, ["zebediah@good.test"], sender_domain=sender_domain)

    _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert (message.state, message.not_before, message.attempts) == (State.DEFERRED, until, 0)
    assert "paused" in message.state_reason
    assert kit["good"].messages == []


def test_mta_sts_enforce_refuses_a_mismatching_mx_even_for_the_notice(
    tenant_a, sender, kit, transport, portal
):
    sender_domain, _ = sender
    kit.policy_server.publish("enforce.test", mode="enforce", mx=["mx.enforce-elsewhere.test"])
    resolver = kit.resolver(
        mx={"enforce.test": [kit["good"].mx()]}, txt={"_mta-sts.enforce.test": ["v=STSv1; id=e1"]}
    )
    (message,) = enqueue(tenant_a, ["zebediah@enforce.test"], sender_domain=sender_domain)

    _drain(tenant_a, make_dependencies(kit, transport, resolver=resolver, portal=portal))

    (message,) = reload(tenant_a, [message])
    # The content went to the portal; the notice itself may not go to an MX the policy does not list
    # (RFC 8461 §5): it waits, and nothing reached the mismatching server.
    assert message.state == State.DEFERRED
    assert message.path == "portal"
    assert "does not match the MTA-STS policy" in message.state_reason
    assert kit["good"].messages == []
    assert kit["good"].connections == 0


def test_a_stream_relay_carries_every_message_over_verified_tls_with_auth(
    tenant_a, sender, kit, deps, settings
):
    sender_domain, _ = sender
    relay = kit["relay"]
    settings.DELIVERY_STREAMS = {"transactional": relay_stream(relay)}
    (message,) = enqueue(tenant_a, ["zebediah@nowhere-in-dns.test"], sender_domain=sender_domain)

    _drain(tenant_a, deps)

    (message,) = reload(tenant_a, [message])
    assert message.state == State.DELIVERED_TLS, message.state_reason
    assert message.evidence["policy"]["source"] == "relay"
    assert message.evidence["tls"]["mx"] == "mx.relay.test"
    assert [m.rcpt_tos for m in relay.messages] == [["zebediah@nowhere-in-dns.test"]]
    assert b"AUTH" not in relay.wire
    assert b"STARTTLS" in relay.wire

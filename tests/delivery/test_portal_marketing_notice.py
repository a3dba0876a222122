"""A newsletter that takes the portal path (no verified TLS at the recipient's MX) is announced as what
it is: under its own subject, with the same visible opt-out and postal address as the message itself,
never as "You have a secure message". Transactional notices stay as they were."""

from __future__ import annotations

import email
import email.policy

import pytest

from consent.links import unsubscribe_url
from delivery.engine.worker import drain
from delivery.models import EncryptionPolicy, Message, Stream
from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many
from delivery.portal.services import portal_deliver

from .engine_support import dependencies, enqueue, new_contact, opted_in, reload, verified_sender_domain

pytestmark = pytest.mark.django_db

NEWSLETTER = RenderedContent(
    subject="Spring newsletter: new evening hours",
    text="Our clinic now opens until 8 pm on Thursdays.\n",
    html="<p>Our clinic now opens until 8 pm on Thursdays.</p>",
    from_name="Clinic News",
)


def _drain(tenant, stream, kit, transport) -> None:
    drain(tenant_id=tenant.pk, stream=stream, deps=dependencies(kit, transport, portal=portal_deliver))


def _notice(kit, host: str):
    (received,) = kit[host].messages
    return email.message_from_bytes(received.content, policy=email.policy.SMTP)


def _bodies(parsed) -> tuple[str, str]:
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    return text, html


def test_a_newsletter_held_for_the_portal_keeps_its_subject_and_its_opt_out(tenant_a, kit, transport):
    sender_domain, _ = verified_sender_domain(tenant_a)
    contact = new_contact(tenant_a, "zebediah@plain.test")
    topic = opted_in(tenant_a, contact)
    (message,) = message_enqueue_many(
        tenant=tenant_a, stream=Stream.MARKETING, source_type="campaign", source_id="spring",
        purpose="marketing", topic=topic.key, uses_phi=False,
        encryption_policy=EncryptionPolicy.TLS_ELSE_PORTAL,
        recipients=[OutboxRecipient(contact.pk, "zebediah@plain.test")], sender_domain=sender_domain,
        content=NEWSLETTER,
    )  # fmt: skip

    drain(
        tenant_id=tenant_a.pk,
        stream=Stream.MARKETING,
        deps=dependencies(kit, transport, portal=portal_deliver),
    )

    (message,) = reload(tenant_a, [message])
    assert message.state == Message.State.DELIVERED_PORTAL, message.state_reason
    parsed = _notice(kit, "plain")
    assert parsed["Subject"] == NEWSLETTER.subject
    assert "secure message" not in parsed["Subject"].lower()
    assert parsed["List-Unsubscribe"].startswith("<http")
    text, html = _bodies(parsed)
    expected_unsubscribe = unsubscribe_url(contact=contact, topic=topic).rsplit("/", 2)[0]  # up to the token
    for body in (text, html):
        assert expected_unsubscribe in body
        assert "Unsubscribe" in body
        assert "Email preferences" in body
        assert "/p/preferences/" in body
        assert tenant_a.postal_address.splitlines()[0] in body
        assert "/m/" in body or "portal" in body  # the link to read it
    assert "Clinic News" in text


def test_a_transactional_notice_still_says_secure_message_and_carries_no_opt_out(tenant_a, kit, transport):
    sender_domain, _ = verified_sender_domain(tenant_a)
    enqueue(tenant_a, ["zebediah@plain.test"], sender_domain=sender_domain)

    drain(
        tenant_id=tenant_a.pk,
        stream=Stream.TRANSACTIONAL,
        deps=dependencies(kit, transport, portal=portal_deliver),
    )

    parsed = _notice(kit, "plain")
    assert parsed["Subject"].startswith("You have a secure message")
    assert parsed["List-Unsubscribe"] is None
    text, _ = _bodies(parsed)
    assert "Unsubscribe" not in text

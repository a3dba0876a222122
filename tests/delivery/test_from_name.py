"""The From display name is the campaign's sender name (or the tenant branding's, for transactional
mail), with the tenant's name as the fallback; it is validated like every header value, encoded
correctly when it is not ASCII, and a line break in it can never add a header."""

from __future__ import annotations

import email
import email.policy
import json
import re
from email.header import decode_header, make_header

import pytest
from django.urls import reverse

from campaigns.models import Campaign
from campaigns.services import launch
from campaigns.services import templates as template_services
from campaigns.services.campaigns import CampaignError
from campaigns.transactional import MessageRequest, RecipientRef, transactional_send
from consent import services as consent
from delivery.engine.compose import build_simple, from_header
from delivery.engine.worker import drain
from delivery.models import Message, Stream
from delivery.outbox import RenderedContent
from delivery.smtp.message import UnsafeMessage
from delivery.tls.resolver import Answer
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.campaigns.conftest import contacts, draft, opt_in, person, scheduled, segment, template
from tests.conftest import sign_in

from .engine_support import PHI_CONTENT, SENDER, dependencies, enqueue, new_contact, reload
from .engine_support import verified_sender_domain as make_sender_domain

pytestmark = pytest.mark.django_db
State = Message.State
ENCODED_WORD = re.compile(r"=\?utf-8\?b\?[^?]*\?=")


def _from(received) -> tuple[str, str]:
    parsed = email.message_from_bytes(received.content, policy=email.policy.SMTP)
    (address,) = parsed["From"].addresses
    return address.display_name, address.addr_spec


@pytest.fixture
def sender_domain(tenant_a):
    return make_sender_domain(tenant_a)[0]


@pytest.fixture
def team(tenant_a):
    return {
        "marketer": person(tenant_a, Role.MARKETER),
        "compliance": person(tenant_a, Role.COMPLIANCE_OFFICER),
        "clinical": person(tenant_a, Role.CLINICAL_REVIEWER),
    }


@pytest.fixture
def ready(tenant_a, team, sender_domain):
    return {
        "domain": sender_domain,
        "template": template(tenant_a, team["marketer"].actor),
        "segment": segment(tenant_a),
    }


# --- the header ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Riverside Cardiology",
        'Dr. "Smith", Cardiology',
        "Clínica São José",
        "日本語クリニック",
        "Hôpital de la Côte — service de cardiologie pédiatrique et néonatale, consultations",
    ],
)
def test_the_display_name_survives_the_round_trip(name):
    value = from_header(name, "news@mail.clinic-a.test")
    built = build_simple([("From", value), ("Subject", "x")], text="hello")

    parsed = email.message_from_bytes(built, policy=email.policy.SMTP)
    (address,) = parsed["From"].addresses
    assert address.addr_spec == "news@mail.clinic-a.test"
    # CPython's address parser keeps the space between encoded words (RFC 2047 says to drop it).
    assert " ".join(address.display_name.split()) == " ".join(name.split())
    assert value.isascii()
    if not name.isascii():
        words = value.rpartition(" <")[0]
        assert str(make_header(decode_header(words))) == name  # an RFC 2047 reader: exactly the name
        assert all(len(word) <= 75 for word in ENCODED_WORD.findall(value))  # RFC 2047 §2


@pytest.mark.parametrize(
    "name", ["Clinic\r\nBcc: x@evil.test", "Clinic\nBcc: x", "Clínica\r\nBcc: x", "A\x00B", "A\u2028B"]
)
def test_a_display_name_with_a_line_break_is_refused_before_any_encoding(name):
    with pytest.raises(UnsafeMessage):
        from_header(name, "news@mail.clinic-a.test")


# --- the engine ------------------------------------------------------------------------------------


def test_the_content_sender_name_is_the_from_name_and_the_tenant_name_the_fallback(
    tenant_a, sender_domain, kit, transport
):
    named = RenderedContent(
        subject=PHI_CONTENT.subject,
        html=PHI_CONTENT.html,
        text=PHI_CONTENT.text,
        from_name="Clínica São José",
    )
    enqueue(tenant_a, ["zebediah@good.test"], sender_domain=sender_domain, content=named)
    enqueue(tenant_a, ["quinn@good.test"], sender_domain=sender_domain)  # no from_name

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))

    by_recipient = {received.rcpt_tos[0]: received for received in kit["good"].messages}
    assert _from(by_recipient["zebediah@good.test"]) == ("Clínica São José", f"care@{SENDER}")
    assert _from(by_recipient["quinn@good.test"]) == (tenant_a.name, f"care@{SENDER}")


def test_a_stored_sender_address_that_is_not_a_plain_local_part_fails_the_message(
    tenant_a, sender_domain, kit, transport
):
    injected = RenderedContent(subject="Hello", html="<p>x</p>", text="x", from_local_part="a b@evil.test> x")
    (message,) = enqueue(tenant_a, ["zebediah@good.test"], sender_domain=sender_domain, content=injected)

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))

    (message,) = reload(tenant_a, [message])
    assert message.state == State.FAILED
    assert message.state_reason == "not sendable: address is not a plain addr-spec"
    assert kit["good"].messages == []


def test_a_stored_from_name_with_a_line_break_fails_the_message_and_sends_nothing(
    tenant_a, sender_domain, kit, transport
):
    injected = RenderedContent(
        subject="Hello", html="<p>x</p>", text="x", from_name="Clinic\r\nBcc: x@evil.test"
    )
    (message,) = enqueue(tenant_a, ["zebediah@good.test"], sender_domain=sender_domain, content=injected)

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))

    (message,) = reload(tenant_a, [message])
    assert message.state == State.FAILED
    assert message.state_reason.startswith("not sendable: From header value contains CR, LF")
    assert kit["good"].messages == []
    assert not kit["good"].saw(b"MAIL FROM")  # the domain's STARTTLS probe, nothing else
    assert not kit["good"].saw(b"evil.test")


def test_a_campaign_sender_name_is_the_from_name_on_the_wire(tenant_a, team, ready, kit, transport):
    ids = contacts(tenant_a, 2)  # one at patients.test, one at example.org
    opt_in(tenant_a, ids)
    campaign = scheduled(tenant_a, team, ready, sender_name="Riverside Cardiology", from_local_part="heart")
    launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)
    good = kit["good"]
    resolver = kit.resolver(mx={"patients.test": Answer((good.mx(),)), "example.org": Answer((good.mx(),))})

    drain(
        tenant_id=tenant_a.pk, stream=Stream.MARKETING, deps=dependencies(kit, transport, resolver=resolver)
    )

    with tenant_context(tenant_a):
        states = list(Message.objects.filter(source_id=str(campaign.pk)).values_list("state", flat=True))
    assert states == [State.DELIVERED_TLS] * 2
    assert len(good.messages) == 2
    for received in good.messages:
        assert f"\r\nFrom: Riverside Cardiology <heart@{SENDER}>\r\n".encode() in received.content
        assert _from(received) == ("Riverside Cardiology", f"heart@{SENDER}")


def test_transactional_mail_uses_the_branding_sender_name(tenant_a, sender_domain, kit, transport):
    actor = Actor.system("tests")
    template_services.branding_update(
        tenant=tenant_a, actor=actor, values={"sender_name": "Riverside Billing"}
    )
    contact = new_contact(tenant_a, "zebediah@good.test")
    request = MessageRequest(
        recipient=RecipientRef(contact_id=contact.pk),
        purpose="payment",
        content={"subject": "Your statement", "html": "<p>Your statement is ready.</p>", "text": ""},
    )
    (accepted,) = transactional_send(tenant=tenant_a, actor=actor, requests=[request])
    assert accepted.error is None, accepted.error

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))

    (received,) = kit["good"].messages
    assert _from(received) == ("Riverside Billing", f"care@{SENDER}")


# --- saving a campaign -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Clinic\r\nBcc: someone@evil.test", "Clinic\nBcc: x", "Clinic\u2028Bcc: x"])
def test_a_sender_name_with_a_line_break_is_refused_when_the_campaign_is_saved(tenant_a, team, ready, name):
    with pytest.raises(CampaignError, match="line breaks") as refused:
        draft(tenant_a, team, ready, sender_name=name)
    assert refused.value.code == "header_injection"


def test_the_campaign_form_refuses_a_sender_name_with_a_line_break(client, tenant_a, team, ready):
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    topic = consent.topic_by_key(tenant=tenant_a, key="marketing_newsletters")

    response = client.post(
        reverse("campaigns:campaign_new"),
        {
            "name": "Heart month",
            "goal": "awareness",
            "purpose": "marketing",
            "topic": topic.pk,
            "segment": ready["segment"].pk,
            "template": ready["template"].pk,
            "sender_name": "Riverside Cardiology\r\nBcc: someone@evil.test",
            "sender_domain": ready["domain"].pk,
            "from_local_part": "news",
            "encryption_policy": "tls_else_portal",
            "frequency_cap_days": 7,
        },
    )

    assert response.status_code == 400
    assert "line breaks" in response.content.decode()
    with tenant_context(tenant_a):
        assert not Campaign.objects.filter(name="Heart month").exists()


def test_rendered_content_without_a_from_name_still_reads(tenant_a):
    """Content sealed before from_name existed decodes with the tenant-name fallback."""
    old = json.dumps({"subject": "s", "html": "h", "text": "t", "preheader": "", "headers": {}}).encode()
    assert RenderedContent.from_bytes(old).from_name == ""

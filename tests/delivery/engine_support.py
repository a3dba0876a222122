"""Building blocks of the engine tests: a verified sender domain, contacts with consent, queued
messages, and engine Dependencies wired to the loopback test servers (tests/delivery/servers.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

from consent import services as consent
from consent.models import Source
from contacts.models import Contact
from delivery import dkim
from delivery.engine.config import EngineSettings
from delivery.engine.send import Dependencies
from delivery.models import DkimKey, EncryptionPolicy, Message, SenderDomain, Stream
from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many
from delivery.sender_domains import records
from delivery.sender_domains import services as sender_domains
from delivery.smtp.outcomes import RetrySchedule
from delivery.tls.mta_sts import HttpsPolicyFetcher
from delivery.tls.probe import starttls_prober
from delivery.tls.resolver import StaticResolver
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.factories import ConsentFactory, ContactFactory

from .conftest import PHI_DIAGNOSIS, PHI_NAME

SYSTEM = Actor.system("tests")
SENDER = "mail.clinic-a.test"
PHI_CONTENT = RenderedContent(
    subject="A message from your care team",
    text=f"Dear {PHI_NAME},\nyour result: {PHI_DIAGNOSIS}.\n",
    html=f"<p>Dear {PHI_NAME},</p><p>your result: {PHI_DIAGNOSIS}.</p>",
)


def verified_sender_domain(tenant, domain: str = SENDER) -> tuple[SenderDomain, str]:
    """(a verified sender domain, the public key its DKIM record publishes)."""
    with tenant_context(tenant):
        sender_domain = sender_domains.sender_domain_add(tenant=tenant, actor=SYSTEM, domain=domain)
        key = DkimKey.objects.get(sender_domain=sender_domain)
        published = StaticResolver(
            txt_map={
                domain: [f"v=spf1 include:{records.spf_include()} ~all"],
                f"_dmarc.{domain}": ["v=DMARC1; p=none"],
                f"{key.selector}._domainkey.{domain}": [dkim.dns_record(key.public_key, key.algorithm)],
            }
        )
        sender_domains.sender_domain_check(
            tenant=tenant, actor=SYSTEM, sender_domain=sender_domain, resolver=published
        )
        sender_domain.refresh_from_db()
    assert sender_domain.status == SenderDomain.Status.VERIFIED
    return sender_domain, key.public_key


def new_contact(tenant, email: str) -> Contact:
    return ContactFactory(tenant=tenant, email=email)


def evidence() -> consent.Evidence:
    return consent.Evidence(source=Source.WEB_FORM, actor=SYSTEM)


def opted_in(tenant, contact, topic_key: str = "marketing_newsletters"):
    topic = consent.topics_ensure_system(tenant=tenant)[topic_key]
    ConsentFactory(tenant=tenant, contact=contact, topic=topic)
    return topic


def enqueue(
    tenant,
    addresses: list[str],
    *,
    sender_domain,
    stream: str = Stream.TRANSACTIONAL,
    purpose: str = "treatment",
    topic: str = "",
    uses_phi: bool = True,
    policy: str = EncryptionPolicy.TLS_ELSE_PORTAL,
    content: RenderedContent | None = PHI_CONTENT,
    source_id: str = "",
    contacts: bool = True,
    **kwargs,
) -> list[Message]:
    recipients = [
        OutboxRecipient(new_contact(tenant, address).pk if contacts else None, address)
        for address in addresses
    ]
    return message_enqueue_many(
        tenant=tenant,
        stream=stream,
        source_type="api" if stream == Stream.TRANSACTIONAL else "campaign",
        source_id=source_id or uuid.uuid4().hex,
        purpose=purpose,
        topic=topic,
        recipients=recipients,
        uses_phi=uses_phi,
        encryption_policy=policy,
        sender_domain=sender_domain,
        content=content,
        **kwargs,
    )


def dependencies(kit, transport, *, resolver=None, portal=None, **engine) -> Dependencies:
    settings = EngineSettings(
        lease=timedelta(seconds=60),
        redis_prefix=f"hm-test:{uuid.uuid4().hex[:8]}",
        retry=RetrySchedule(minimum=timedelta(minutes=5), max_age=timedelta(days=5)),
    )
    return Dependencies(
        resolver=resolver or kit.resolver(),
        fetcher=HttpsPolicyFetcher(ca_file=kit.ca_file, connect_to=kit.connect_to()),
        prober=starttls_prober(transport),
        transport=transport,
        engine=replace(settings, **engine),
        portal=portal,
    )


def relay_stream(relay, **extra) -> dict:
    """A DELIVERY_STREAMS entry sending everything through the kit's relay (verified TLS + AUTH)."""
    return {
        "relay": {
            "host": "mx.relay.test",
            "port": relay.port,
            "address": "127.0.0.1",
            "username": "relay-user",
            "password": "relay-secret",
        },
        **extra,
    }


def reload(tenant, messages) -> list[Message]:
    with tenant_context(tenant):
        by_id = Message.objects.in_bulk([m.pk for m in messages])
        return [by_id[m.pk] for m in messages]

"""Real Celery delivery workers against a recording sink (tests/delivery/sink.py), for the outage tests
and the chaos runs: their environment, a broker of their own, and a wake-up that reaches them."""

from __future__ import annotations

import os
import uuid

from celery import Celery
from django.conf import settings

from consent import services as consent
from consent.models import Source
from contacts.models import Contact
from delivery.outbox import OutboxRecipient, message_enqueue_many
from healthmail.crypto.blind import blind_index
from healthmail.tenants.context import tenant_context
from tests.delivery.engine_support import SYSTEM, verified_sender_domain
from tests.delivery.sink import SinkProcess
from tests.factories import BaaFactory, TenantFactory


def owner_database_url() -> str:
    owner = settings.DATABASES["owner"]
    return f"postgres://{owner['USER']}@{owner['HOST']}:{owner['PORT']}/{owner['NAME']}"


def worker_environment(
    sink: SinkProcess,
    *,
    domain: str,
    broker_url: str,
    journal: str,
    application_name: str | None = None,
    **tunables: str,
) -> dict[str, str]:
    """What a worker needs to send `domain`'s mail to `sink`, with DELIVERY_* (or other) `tunables`;
    its database sessions are named `application_name` (random unless given)."""
    return {
        **os.environ,
        **sink.environment(domain),
        "DELIVERY_JOURNAL_DIR": journal,
        "DELIVERY_REDIS_PREFIX": f"hm-test:{uuid.uuid4().hex[:8]}",
        **tunables,
        "DJANGO_SETTINGS_MODULE": "tests.delivery.sink_settings",
        "SINK_BASE_SETTINGS": "healthmail.settings.test",
        "SINK_BROKER_URL": broker_url,
        "SINK_APPLICATION_NAME": application_name or f"worker-{uuid.uuid4().hex[:8]}",
    }


def waker(broker_url: str):
    """delivery.tasks.wake, sending to the workers' own broker."""
    client = Celery(f"client-{uuid.uuid4().hex[:6]}", broker=broker_url)

    def wake(*, tenant_id, stream: str) -> None:
        name = f"delivery.tasks.{'transactional' if stream == 'transactional' else 'marketing'}_send"
        client.send_task(name, kwargs={"tenant_id": str(tenant_id)}, queue=stream)

    return wake


def campaign(count: int, domain: str, prefix: str = "chaos"):
    """A tenant with a verified sender domain and `count` contacts at `domain` who opted in to the
    newsletter: (tenant, sender domain, contacts)."""
    slug = f"{prefix}-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Chaos {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    sender, _ = verified_sender_domain(tenant, f"mail.{slug}.test")
    with tenant_context(tenant):
        contacts = [
            Contact(
                tenant=tenant,
                email=f"p{i:05d}@{domain}",
                email_index=blind_index(tenant, "email", f"p{i:05d}@{domain}"),
            )
            for i in range(count)
        ]
        Contact.objects.bulk_create(contacts, batch_size=1000)
    for start in range(0, count, 5000):
        rows = [
            (c.pk, "marketing_newsletters", Source.IMPORT, c.created_at)
            for c in contacts[start : start + 5000]
        ]
        consent.consent_import_evidence(tenant=tenant, actor=SYSTEM, rows=rows)
    return tenant, sender, contacts


def campaign_enqueue(tenant, sender, contacts, domain: str, *, source_id: str) -> None:
    """Queue the newsletter to the contacts `campaign` made (their addresses at `domain`), 2,000 a
    transaction as a large campaign would."""
    for start in range(0, len(contacts), 2000):
        batch = contacts[start : start + 2000]
        message_enqueue_many(
            tenant=tenant,
            stream="marketing",
            source_type="synthetic",
            source_id=source_id,
            purpose="marketing",
            topic="marketing_newsletters",
            uses_phi=False,
            sender_domain=sender,
            recipients=[OutboxRecipient(c.pk, f"p{start + i:05d}@{domain}") for i, c in enumerate(batch)],
        )

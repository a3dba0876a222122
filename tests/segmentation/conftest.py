"""Synthetic audiences for segmentation tests: contacts.synthetic patients stored through the
importer's bulk service (ContactFactory.create_many: sealed, blind-indexed, derived columns as
production writes them), with varied creation dates; consent grants and suppressions through the
consent services."""

from __future__ import annotations

import datetime
import random

import pytest
from django.utils import timezone

from consent import services as consent
from consent import suppressions
from consent.models import ConsentEvent, Source, Suppression
from contacts.models import Contact
from contacts.synthetic import synthetic_contact
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.factories import ConsentFactory, ContactFactory

TODAY = datetime.date(2025, 1, 1)
ENGAGEMENT_ANCHOR = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)  # test_language's NOW


def make_contacts(tenant, count: int, *, seed: int = 1) -> list[Contact]:
    rng = random.Random(seed)
    inputs = []
    for index in range(count):
        data = synthetic_contact(index + 1, seed=seed, today=TODAY)
        if index % 17 == 0:
            data.birth_date = None  # some contacts with no known age
        inputs.append(data)
    contacts = ContactFactory.create_many(tenant=tenant, inputs=inputs)
    # Written directly: the service stamps every contact "created now", and the "created within"
    # criteria need an audience that arrived over a year (no service back-dates a contact).
    now = timezone.now()
    for contact in contacts:
        contact.created_at = now - datetime.timedelta(days=rng.randint(0, 400))
    with tenant_context(tenant):
        Contact.objects.bulk_update(contacts, ["created_at"])
    return contacts


def grant_and_suppress(tenant, contacts: list[Contact], *, seed: int = 1) -> None:
    rng = random.Random(seed)
    topics = consent.topics_ensure_system(tenant=tenant)
    actor = Actor.system("tests")
    for contact in rng.sample(contacts, k=max(1, len(contacts) // 5)):
        topic = topics[rng.choice(["marketing_newsletters", "research"])]
        ConsentFactory(tenant=tenant, contact=contact, topic=topic, source=Source.IMPORT, actor=actor)
    for contact in rng.sample(contacts, k=max(1, len(contacts) // 10)):
        ConsentFactory(
            tenant=tenant,
            contact=contact,
            topic=topics["research"],
            kind=ConsentEvent.Kind.REVOKED,
            source=Source.IMPORT,
            actor=actor,
        )
    for contact in rng.sample(contacts, k=max(1, len(contacts) // 12)):
        suppressions.suppression_add(
            tenant=tenant, actor=actor, reason=Suppression.Reason.MANUAL, contact=contact
        )


def add_engagement(tenant, contacts: list[Contact], *, seed: int = 1) -> None:
    """Opens, clicks and conversions at varied ages, some flagged as bots (never counted)."""
    from delivery.models import EngagementEvent

    rng = random.Random(seed)
    now = ENGAGEMENT_ANCHOR
    events = [
        EngagementEvent(
            tenant=tenant,
            contact=contact,
            kind=rng.choice(["open", "open", "click", "conversion"]),
            occurred_at=now - datetime.timedelta(days=rng.randint(0, 120), hours=rng.randint(0, 23)),
            is_bot=rng.random() < 0.2,
        )
        for contact in rng.sample(contacts, k=len(contacts) // 2)
        for _ in range(rng.randint(1, 4))
    ]
    with tenant_context(tenant):
        EngagementEvent.objects.bulk_create(events)


@pytest.fixture
def audience_a(tenant_a):
    contacts = make_contacts(tenant_a, 300, seed=1)
    grant_and_suppress(tenant_a, contacts, seed=1)
    add_engagement(tenant_a, contacts, seed=1)
    return contacts


@pytest.fixture
def audience_b(tenant_b):
    contacts = make_contacts(tenant_b, 60, seed=2)
    return contacts

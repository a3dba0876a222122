"""Retention test helpers: messages with content at chosen ages, officers, a moment years ahead."""

from __future__ import annotations

import datetime
import uuid

from django.utils import timezone

from audit.actors import Actor
from contacts.models import Contact
from delivery.models import Message, Stream
from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many
from healthmail.accounts.roles import Role
from healthmail.crypto.blind import blind_index
from healthmail.tenants.context import tenant_context
from tests.factories import MembershipFactory

YEAR = datetime.timedelta(days=365)


def officer(tenant):
    """A compliance officer of the tenant, as an Actor (for services)."""
    membership = MembershipFactory(tenant=tenant, role=Role.COMPLIANCE_OFFICER)
    return Actor.for_user(membership.user)


def new_contact(tenant, *, deleted_at=None) -> Contact:
    email = f"patient-{uuid.uuid4().hex[:10]}@example.org"
    with tenant_context(tenant):
        return Contact.objects.create(
            tenant=tenant,
            email=email,
            email_index=blind_index(tenant, "email", email),
            first_name="Synthetic",
            last_name="Patient",
            clinical={"conditions": ["E11"]},
            clinical_tokens=[1, 2, 3],
            deleted_at=deleted_at,
        )


def new_messages(
    tenant,
    count: int,
    *,
    age: datetime.timedelta,
    contact: Contact | None = None,
    source_id: str = "c-1",
    state: str = Message.State.DELIVERED_TLS,
) -> list[Message]:
    """Sent messages with stored (sealed) content, created `age` ago."""
    contact = contact or new_contact(tenant)
    messages = message_enqueue_many(
        tenant=tenant,
        stream=Stream.TRANSACTIONAL,
        source_type="campaign",
        source_id=source_id,
        purpose="treatment",
        recipients=[
            OutboxRecipient(contact.pk, f"p{i}-{uuid.uuid4().hex[:6]}@example.org") for i in range(count)
        ],
        content=RenderedContent(subject="Your results", html="<p>Lab result: A1C 7.1</p>", text="A1C 7.1"),
    )
    with tenant_context(tenant):
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(
            created_at=timezone.now() - age, state=state
        )
    return messages


def message_exists(tenant, message_id) -> bool:
    with tenant_context(tenant):
        return Message.objects.filter(pk=message_id).exists()

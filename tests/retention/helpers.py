"""Retention test helpers: messages with content at chosen ages, officers, a moment years ahead."""

from __future__ import annotations

import datetime
import uuid

from django.utils import timezone

from contacts.models import Contact
from delivery.models import Message, Stream
from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.factories import ContactFactory, MembershipFactory

YEAR = datetime.timedelta(days=365)


def officer(tenant):
    """A compliance officer of the tenant, as an Actor (for services)."""
    membership = MembershipFactory(tenant=tenant, role=Role.COMPLIANCE_OFFICER)
    return Actor.for_user(membership.user)


def policy_set(tenant, category: str, **changes) -> None:
    """A new policy version for `category` (the current one with `changes`), proposed by one officer
    and approved by a second (four eyes)."""
    import dataclasses

    from retention import policies

    policies.policies_ensure_defaults(tenant=tenant)
    current = policies.policy_in_force(tenant=tenant, category=category)
    data = policies.PolicyInput(
        min_retention_days=current.min_retention_days,
        max_retention_days=current.max_retention_days,
        action=current.action,
        approval_required=current.approval_required,
        rationale="Test policy",
        reason="Test",
        legal_basis=current.legal_basis,
        archive_after_days=current.archive_after_days,
    )
    proposed = policies.policy_propose(
        tenant=tenant, actor=officer(tenant), category=category, data=dataclasses.replace(data, **changes)
    )
    policies.policy_decide(tenant=tenant, actor=officer(tenant), policy=proposed, approve=True)


def new_contact(tenant, *, deleted_at=None) -> Contact:
    contact = ContactFactory(tenant=tenant, clinical={"conditions": ["E11"]})
    if deleted_at is not None:
        # Marked deleted directly: contact_delete crypto-shreds at once, and these tests need a deleted
        # contact still inside its grace period (identity in place until retention tombstones it).
        with tenant_context(tenant):
            Contact.objects.filter(pk=contact.pk).update(deleted_at=deleted_at)
            contact.refresh_from_db()
    return contact


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


# --- Records of every destroyable category (the accounting test and the state machine) ---------------


def new_portal_copy(tenant, message: Message, *, reply: str = "Thank you") -> str:
    """The message's secure portal copy, with a reply from the patient (links, codes, reply rows)."""
    from delivery.models import PortalMessage
    from delivery.outbox import message_content
    from delivery.portal.services import portal_deliver, portal_reply

    with tenant_context(tenant):
        portal_deliver(message, message_content(message))
        portal = PortalMessage.objects.get(message_id=message.pk)
        portal_reply(portal_message=portal, body=reply)
        return str(portal.pk)


def new_tracking_event(tenant, *, age: datetime.timedelta, contact=None, message=None) -> str:
    """An engagement event (no relations point at events: Django deletes them on its fast path)."""
    from delivery.models import EngagementEvent

    with tenant_context(tenant):
        event = EngagementEvent.objects.create(
            tenant=tenant,
            message=message,
            contact=contact,
            kind=EngagementEvent.Kind.PAGE_VIEW if message is None else EngagementEvent.Kind.CLICK,
            label="insulin-pump-trial-signup",
            source_type="campaign",
            source_id="c-1",
            occurred_at=timezone.now() - age,
        )
        return str(event.pk)


def new_webhook_delivery(tenant, *, age: datetime.timedelta) -> str:
    from delivery.models import WebhookDelivery, WebhookEndpoint

    with tenant_context(tenant):
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant, url="https://hooks.example.org/in", secret="s3cret", event_types=["delivered"]
        )
        delivery = WebhookDelivery.objects.create(
            tenant=tenant,
            endpoint=endpoint,
            event_type="delivered",
            payload={"message_id": str(uuid.uuid4())},
            state=WebhookDelivery.State.SUCCEEDED,
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - age)
        return str(delivery.pk)


def new_export(tenant, actor, *, age: datetime.timedelta, contact: Contact) -> str:
    from retention import exports
    from retention.models import EvidenceExport

    export = exports.evidence_export_create(
        tenant=tenant,
        actor=actor,
        purpose="Records request",
        recipient="Outside counsel",
        scope=exports.ExportScope(contact_ids=(contact.pk,)),
    )
    with tenant_context(tenant):
        EvidenceExport.objects.filter(pk=export.pk).update(created_at=timezone.now() - age)
    return str(export.pk)


def new_deleted_contact(tenant, *, age: datetime.timedelta) -> str:
    return str(new_contact(tenant, deleted_at=timezone.now() - age).pk)


def records_gone(tenant, category: str, ids) -> set[str]:
    """Of `ids`, the records of `category` the database no longer holds as records: rows deleted,
    content cleared (message content), identity cleared (contacts). Written from the tables, not
    from the retention code."""
    from delivery.models import EngagementEvent, PortalMessage, WebhookDelivery
    from retention.models import EvidenceExport

    ids = [str(i) for i in ids]
    with tenant_context(tenant):
        if category == "message_content":  # the row stays, its content is gone (a deleted row is metadata's)
            shredded = Message.objects.filter(pk__in=ids, content_key__isnull=True, content__isnull=True)
            return {str(pk) for pk in shredded.values_list("pk", flat=True)}
        elif category == "contacts":
            kept = Contact.objects.filter(pk__in=ids).exclude(email__isnull=True, email_index__isnull=True)
        else:
            model = {
                "message_metadata": Message,
                "portal_messages": PortalMessage,
                "tracking_events": EngagementEvent,
                "webhook_logs": WebhookDelivery,
                "exports": EvidenceExport,
            }[category]
            kept = model.objects.filter(pk__in=ids)
        return set(ids) - {str(pk) for pk in kept.values_list("pk", flat=True)}

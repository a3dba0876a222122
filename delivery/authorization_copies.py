"""Delivery's channel for consent.copies: the signed authorization goes to the patient through the
secure portal (a transactional operations message, portal always: the email is only a notice)."""

from __future__ import annotations

from django.utils.html import escape

from audit.phi import phi_access
from consent.models import Authorization
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import EncryptionPolicy, Stream
from .outbox import OutboxRecipient, RenderedContent, message_enqueue_many
from .sender_domains.selectors import sender_domain_verified


def authorization_copy_by_portal(
    tenant: Tenant, authorization: Authorization, subject: str, text: str
) -> str | None:
    """The copy as a portal message from the tenant's verified sender domain; None when it cannot go."""
    contact = Contact.objects.for_tenant(tenant).get(pk=authorization.contact_id)
    with phi_access(
        actor=Actor.system("delivery.authorization_copies"),
        tenant=tenant,
        objects=[contact],
        fields=["email"],
        purpose="send the individual a copy of their signed authorization",
    ):
        address = contact.email
    if not address:
        return None
    with tenant_context(tenant):
        sender_domain = sender_domain_verified(tenant=tenant)
    if sender_domain is None:
        # The signing page still offers the download; nothing can be emailed from this tenant yet.
        return None
    [message] = message_enqueue_many(
        tenant=tenant,
        stream=Stream.TRANSACTIONAL,
        source_type="authorization_copy",
        source_id=str(authorization.pk),
        purpose="operations",
        recipients=[OutboxRecipient(contact.pk, address)],
        uses_phi=True,
        encryption_policy=EncryptionPolicy.PORTAL_ALWAYS,
        sender_domain=sender_domain,
        content=RenderedContent(subject=subject, html=f"<pre>{escape(text)}</pre>", text=text),
    )
    return f"message:{message.pk}"

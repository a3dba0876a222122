"""Delivery's sender for consent.patient_mail, and the portal's codes: mail from the tenant to a patient
that carries no PHI (one-time codes, confirmations, reminders), as one transactional outbox row.

From the tenant's verified sender domain (the portal message's own domain while it stays verified,
else the tenant's first), DKIM-signed by the engine like every other message. Sent by TLS when the
receiving domain offers it and in the clear otherwise (the OPPORTUNISTIC policy; a domain's own
MTA-STS or DANE is still obeyed): the portal cannot be the fallback of the code that opens the portal,
and failing would lock out exactly the patients whose provider has no verified TLS, while the mail
holds nothing a reader of that wire could not already see (the portal notice it answers took the same
road). A tenant without a verified sender domain is refused with a clear message, never sent from the
platform's own address."""

from __future__ import annotations

import datetime
import uuid

from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import EncryptionPolicy, Message, Stream
from .outbox import OutboxRecipient, RenderedContent, message_enqueue_many
from .sender_domains.selectors import sender_domain_verified
from .sender_domains.services import SenderDomainUnverified

SOURCE_TYPE = "patient_mail"
PURPOSE = "operations"  # a transactional purpose: no marketing consent needed, hard suppressions obeyed


class PatientMailUnavailable(SenderDomainUnverified):
    """The tenant has no verified sender domain: nothing can be sent to its patients."""

    status_code = 409
    title = "Email cannot be sent"


def patient_mail_send(
    *,
    tenant: Tenant,
    contact_id: uuid.UUID | None,
    address: str,
    subject: str,
    body: str,
    kind: str,
    expires_at: datetime.datetime | None = None,
    preferred_domain_id: uuid.UUID | None = None,
) -> Message:
    """Queue one mail in the caller's transaction (workers are woken after it commits). `kind` names
    what it is (portal_code, mailbox_code...): the row's source id, so it shows in Feedback-ID."""
    with tenant_context(tenant):  # callers may hold no context yet (staff services, tasks)
        sender_domain = sender_domain_verified(tenant=tenant, preferred_id=preferred_domain_id)
    if sender_domain is None:
        raise PatientMailUnavailable(
            f"{tenant.name} cannot send email to you right now (its email set-up is not finished). "
            f"Please contact {tenant.name} directly.",
            code="sender_domain_unverified",
        )
    [message] = message_enqueue_many(
        tenant=tenant,
        stream=Stream.TRANSACTIONAL,
        source_type=SOURCE_TYPE,
        source_id=kind,
        purpose=PURPOSE,
        recipients=[OutboxRecipient(contact_id, address)],
        uses_phi=False,
        encryption_policy=EncryptionPolicy.OPPORTUNISTIC,
        sender_domain=sender_domain,
        content=RenderedContent(subject=subject, html="", text=body),
        expires_at=expires_at,  # a code that arrives after it expired helps nobody
    )
    return message

"""Reading the mail the platform sends to patients (codes, confirmations, reminders): rows of the
delivery engine's outbox (delivery.patient_mail), opened as the engine would open them to send.
tests/delivery/test_patient_mail.py sends such rows over SMTP and checks their DKIM signatures."""

from __future__ import annotations

from dataclasses import dataclass

from delivery.models import Message, SenderDomain
from delivery.outbox import message_content
from delivery.patient_mail import SOURCE_TYPE
from healthmail.crypto.blind import blind_index
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .engine_support import verified_sender_domain


@dataclass(frozen=True)
class QueuedMail:
    to: list[str]
    subject: str
    body: str
    from_domain: str  # the verified sender domain the engine signs it with
    message: Message


def patient_mail(*, to: str = "") -> list[QueuedMail]:
    """The queued patient mail of every tenant, oldest first; `to`: only to that address (tests on
    committed data share the outbox with other tenants' mail)."""
    found = []
    for tenant in Tenant.objects.all():
        with tenant_context(tenant):
            rows = Message.objects.filter(source_type=SOURCE_TYPE).select_related("sender_domain")
            # Only tenants with patient mail: another test's committed tenant may keep its keys in a
            # key store of its own (tests/crypto), or be shredded, and opens nothing here.
            if not rows.exists():
                continue
            if to:
                rows = rows.filter(to_address_index=blind_index(tenant, "email", to))
            for message in rows:
                content = message_content(message)
                found.append(
                    QueuedMail(
                        to=[message.to_address],
                        subject=content.subject,
                        body=content.text,
                        from_domain=message.sender_domain.domain,
                        message=message,
                    )
                )
    return sorted(found, key=lambda mail: (mail.message.created_at, mail.message.pk))


def patient_sender(tenant, domain: str = "") -> SenderDomain:
    """The tenant's verified sender domain, set up (DNS records checked) on first use."""
    with tenant_context(tenant):
        found = SenderDomain.objects.filter(status=SenderDomain.Status.VERIFIED).first()
    if found is not None:
        return found
    sender_domain, _public_key = verified_sender_domain(tenant, domain or f"mail.{tenant.slug}.test")
    return sender_domain

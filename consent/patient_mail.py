"""Mail from the tenant to a patient that no campaign or API call sends: one-time codes, the
confirmation of a lowered protection with its undo link, authorization reminders.

It leaves like every other mail to a patient: from the tenant's verified sender domain, DKIM-signed,
through the delivery engine (never the platform's system-mail outbox, which is for staff). Consent
sits below delivery, so delivery registers the sender here (delivery.patient_mail) and consent never
imports it. None of these mails may carry PHI: the engine sends them by TLS when offered
(docs/delivery.md, "Mail the platform sends to patients")."""

from __future__ import annotations

import datetime
import uuid
from typing import Protocol

from healthmail.tenants.models import Tenant


class PatientMailSender(Protocol):
    def __call__(
        self,
        *,
        tenant: Tenant,
        contact_id: uuid.UUID | None,
        address: str,
        subject: str,
        body: str,
        kind: str,
        expires_at: datetime.datetime | None = None,
    ) -> object: ...


_senders: list[PatientMailSender] = []


def patient_mail_sender_register(sender: PatientMailSender) -> None:
    """Called once by the app that owns the engine (delivery's AppConfig.ready)."""
    _senders[:] = [sender]


def patient_mail_send(
    *,
    tenant: Tenant,
    contact_id: uuid.UUID | None,
    address: str,
    subject: str,
    body: str,
    kind: str,
    expires_at: datetime.datetime | None = None,
) -> object:
    """Queue the mail in the caller's transaction; raises the sender's ApplicationError when the
    tenant cannot send to patients (no verified sender domain)."""
    if not _senders:
        # Fail closed: a code must never silently go nowhere, nor fall back to another channel.
        raise RuntimeError("No patient mail sender is registered (is the delivery app installed?).")
    return _senders[0](
        tenant=tenant,
        contact_id=contact_id,
        address=address,
        subject=subject,
        body=body,
        kind=kind,
        expires_at=expires_at,
    )

"""Proof of the mailbox before a patient lowers their own protection from an emailed link.

A preference link travels in every marketing footer: it is forwarded, opened by link scanners and
valid for weeks, so holding it proves nothing about who reads the patient's mail. Asking for email
without encryption therefore takes a one-time code sent to the contact's address (the portal's code
machinery, healthmail.one_time_codes), and once confirmed a mail to the same address says what
changed, with a one-click undo. Neither mail says anything about the patient's health."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from audit.models import AuditEvent
from audit.phi import phi_access
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.one_time_codes import (
    code_hash,
    code_matches,
    code_new,
    code_normalize,
    throttle_count,
    throttle_hit,
)
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .evidence import ConsentError, Evidence, recipient_actor
from .models import MailboxCheck
from .patient_mail import patient_mail_send

CODE_TTL = datetime.timedelta(minutes=10)
CODE_MAX_ATTEMPTS = 5
_PURPOSE = "mailbox-check"


class MailboxCheckFailed(ApplicationError):
    status_code = 400
    title = "Code not accepted"


class MailboxCheckThrottled(ApplicationError):
    status_code = 429
    title = "Too many attempts"


def _limits(kind: str) -> tuple[int, int]:
    # The portal's limits, per contact instead of per message: one set of numbers to tune.
    if kind == "send":
        return settings.PORTAL_CODE_SENDS_PER_LINK, settings.PORTAL_CODE_SENDS_PER_IP
    return settings.PORTAL_FAILURES_PER_LINK, settings.PORTAL_FAILURES_PER_IP


def _keys(kind: str, contact: Contact, ip: str | None) -> tuple[str, str | None]:
    return f"consent:mailbox:{kind}:c:{contact.pk}", (f"consent:mailbox:{kind}:ip:{ip}" if ip else None)


def _check_limits(tenant: Tenant, contact: Contact, ip: str | None, kind: str) -> None:
    per_contact, per_ip = _limits(kind)
    contact_key, ip_key = _keys(kind, contact, ip)
    if throttle_count(contact_key) >= per_contact or (ip_key and throttle_count(ip_key) >= per_ip):
        audit.record(
            actor=recipient_actor(contact),
            action="consent.mailbox_check",
            target=contact,
            tenant=tenant,
            outcome=AuditEvent.Outcome.DENIED,
            reason=f"{kind} limit",
        )
        raise MailboxCheckThrottled(
            "Too many attempts. For your security, please wait an hour and try again.", code=f"{kind}_limit"
        )


def _hit(contact: Contact, ip: str | None, kind: str) -> None:
    for key in _keys(kind, contact, ip):
        if key:
            throttle_hit(key)


def contact_address(*, tenant: Tenant, contact: Contact, purpose: str, actor: Actor | None = None) -> str:
    """The contact's address, read as an audited PHI access (by the patient unless `actor` says who)."""
    with phi_access(
        actor=actor or recipient_actor(contact),
        tenant=tenant,
        objects=[contact],
        fields=["email"],
        purpose=purpose,
    ):
        address = contact.email
    if not address:
        raise ConsentError("There is no email address on file to send a code to.", code="no_address")
    return address


def mailbox_check_pending(*, tenant: Tenant, contact: Contact, action: str) -> MailboxCheck | None:
    with tenant_context(tenant):
        return (
            MailboxCheck.objects.for_tenant(tenant)
            .filter(contact=contact, action=action, used_at__isnull=True, expires_at__gt=timezone.now())
            .first()
        )


def mailbox_check_start(
    *, tenant: Tenant, contact: Contact, action: str, purposes: Iterable[str], evidence: Evidence
) -> MailboxCheck:
    """Send a new code for this change to the contact's address (earlier codes stop working)."""
    _check_limits(tenant, contact, evidence.ip_address, "send")  # outside the transaction: kept
    _hit(contact, evidence.ip_address, "send")
    address = contact_address(tenant=tenant, contact=contact, purpose="one-time code for a settings change")
    code = code_new()
    with transaction.atomic(), tenant_context(tenant):
        now = timezone.now()
        MailboxCheck.objects.for_tenant(tenant).filter(
            contact=contact, action=action, used_at__isnull=True
        ).update(used_at=now)
        check = MailboxCheck(
            tenant=tenant,
            contact=contact,
            action=action,
            purposes=sorted(set(purposes)),
            text=evidence.text,
            expires_at=now + CODE_TTL,
        )
        check.code_hash = code_hash(purpose=_PURPOSE, entry_id=check.pk, code=code)
        check.save()
        audit.record(
            actor=evidence.actor,
            action="consent.mailbox_check_send",
            target=check,
            tenant=tenant,
            details={"action": action},
        )
        _send_code(tenant, contact, address, check, code)  # queued with the check: both or neither
    return check


def mailbox_mail(
    *,
    tenant: Tenant,
    contact: Contact,
    address: str,
    kind: str,
    subject: str,
    body: str,
    expires_at: datetime.datetime | None = None,
) -> None:
    """The one place these mails leave (codes, confirmations): from the tenant's verified sender domain
    through the delivery engine (consent.patient_mail), in the caller's transaction, so a mail server
    outage never loses or fails one. A tenant that cannot send yet is refused with a clear message."""
    patient_mail_send(
        tenant=tenant,
        contact_id=contact.pk,
        address=address,
        subject=subject,
        body=body,
        kind=kind,
        expires_at=expires_at,
    )


def _send_code(tenant: Tenant, contact: Contact, address: str, check: MailboxCheck, code: str) -> None:
    mailbox_mail(
        tenant=tenant,
        contact=contact,
        address=address,
        kind="mailbox_code",
        subject=f"Your code to change your email settings with {tenant.name}",
        body=(
            f"Your one-time code is {code}\n\n"
            "Someone asked to change how you receive email from us. The code works for 10 minutes.\n"
            "If it was not you, ignore this email: nothing changes without the code.\n"
        ),
        expires_at=check.expires_at,  # a code that arrives after it expired helps nobody
    )


def mailbox_check_confirm(
    *, tenant: Tenant, contact: Contact, action: str, code: str, evidence: Evidence
) -> MailboxCheck:
    """The pending check this code proves (now used), or MailboxCheckFailed / MailboxCheckThrottled."""
    _check_limits(tenant, contact, evidence.ip_address, "fail")
    code = code_normalize(code)
    with transaction.atomic(), tenant_context(tenant):
        check = (
            MailboxCheck.objects.for_tenant(tenant)
            .select_for_update()
            .filter(contact=contact, action=action, used_at__isnull=True, expires_at__gt=timezone.now())
            .first()
        )
        good = False
        if check is not None:
            check.attempts += 1
            good = check.attempts <= CODE_MAX_ATTEMPTS and code_matches(
                purpose=_PURPOSE, entry_id=check.pk, code=code, stored_hash=check.code_hash
            )
            if good or check.attempts >= CODE_MAX_ATTEMPTS:
                check.used_at = timezone.now()  # used, or burnt: the next try needs a new code
            check.save(update_fields=["attempts", "used_at"])
    if check is None or not good:
        _hit(contact, evidence.ip_address, "fail")
        reason = "no_code" if check is None else "wrong_code"
        audit.record(
            actor=evidence.actor,
            action="consent.mailbox_check_verify",
            target=contact,
            tenant=tenant,
            outcome=AuditEvent.Outcome.DENIED,
            reason=reason,
        )
        raise MailboxCheckFailed(
            "This code has expired or was replaced. Ask for a new code."
            if check is None
            else "That code is not correct. Please check it.",
            code=reason,
        )
    audit.record(actor=evidence.actor, action="consent.mailbox_check_verify", target=check, tenant=tenant)
    return check

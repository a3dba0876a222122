"""Verifying the portal reader: a 6-digit code sent to the message's address (hashed, 10 minutes,
limited attempts) or a passphrase the recipient registered; attempts are throttled per link and per
client address through Redis counters shared by every web process (429 past the limits)."""

from __future__ import annotations

import uuid

from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from audit.models import AuditEvent
from audit.phi import phi_access
from healthmail.errors import ApplicationError
from healthmail.one_time_codes import (
    code_hash,
    code_matches,
    code_new,
    code_normalize,
    throttle_count,
    throttle_hit,
)
from healthmail.tenants.models import Tenant

from ..models import Message, PortalCode, PortalMessage
from ..patient_mail import PatientMailUnavailable, patient_mail_send
from .services import (
    CODE_MAX_ATTEMPTS,
    CODE_TTL,
    MIN_PASSPHRASE_CHARS,
    PortalThrottled,
    PortalVerificationFailed,
    _setting,
    portal_available,
    recipient,
)

# --- throttling (Redis counters shared by all web processes: healthmail.one_time_codes) ---------------

_count = throttle_count
_bump = throttle_hit


def _throttled(portal_message: PortalMessage, what: str, reason: str) -> PortalThrottled:
    audit.record(
        actor=recipient(portal_message),
        action=f"portal.{what}",
        target=portal_message,
        tenant=portal_message.tenant_id,
        outcome=AuditEvent.Outcome.DENIED,
        reason=reason,
    )
    return PortalThrottled(
        "Too many attempts. For your security, please wait an hour and try again.", code=reason
    )


def _check_limits(portal_message: PortalMessage, ip: str | None, kind: str, what: str) -> None:
    limits = {
        "send": (_setting("PORTAL_CODE_SENDS_PER_LINK", 5), _setting("PORTAL_CODE_SENDS_PER_IP", 20)),
        "fail": (_setting("PORTAL_FAILURES_PER_LINK", 10), _setting("PORTAL_FAILURES_PER_IP", 30)),
    }[kind]
    if _count(f"portal:{kind}:m:{portal_message.pk}") >= limits[0]:
        raise _throttled(portal_message, what, f"{kind} limit per link")
    if ip and _count(f"portal:{kind}:ip:{ip}") >= limits[1]:
        raise _throttled(portal_message, what, f"{kind} limit per address")


def _record_hit(portal_message: PortalMessage, ip: str | None, kind: str) -> None:
    _bump(f"portal:{kind}:m:{portal_message.pk}")
    if ip:
        _bump(f"portal:{kind}:ip:{ip}")


# --- verification -------------------------------------------------------------------------------------


def _code_hash(code_id: uuid.UUID, code: str) -> str:
    return code_hash(purpose="portal-code", entry_id=code_id, code=code)


def portal_code_send(*, portal_message: PortalMessage, ip: str | None) -> None:
    """Send a new 6-digit code to the message's address (the previous ones stop working)."""
    portal_available(portal_message)
    _check_limits(portal_message, ip, "send", "code_send")  # outside the atomic block: the refusal is kept
    _record_hit(portal_message, ip, "send")
    try:
        with transaction.atomic():
            _code_issue(portal_message)
    except PatientMailUnavailable as error:
        audit.record(
            actor=recipient(portal_message),
            action="portal.code_send",
            target=portal_message,
            tenant=portal_message.tenant_id,
            outcome=AuditEvent.Outcome.DENIED,
            reason=error.code,
        )
        raise


def _code_issue(portal_message: PortalMessage) -> None:
    now = timezone.now()
    PortalCode.objects.filter(portal_message=portal_message, used_at__isnull=True).update(used_at=now)
    code = code_new()
    entry = PortalCode(
        tenant_id=portal_message.tenant_id, portal_message=portal_message, expires_at=now + CODE_TTL
    )
    entry.code_hash = _code_hash(entry.pk, code)
    entry.save()
    message = Message.objects.get(pk=portal_message.message_id)
    tenant = Tenant.objects.get(pk=portal_message.tenant_id)
    with phi_access(
        actor=recipient(portal_message),
        tenant=tenant,
        objects=[message],
        fields=["to_address"],
        purpose="portal one-time code",
    ):
        address = message.to_address
    # From the tenant's domain, DKIM-signed, through the engine (delivery.patient_mail); the mail that
    # brought the link came from the message's own sender domain, so the code does too while it stays
    # verified. The row expires with the code: a code that arrives late helps nobody.
    patient_mail_send(
        tenant=tenant,
        contact_id=message.contact_id,
        address=address,
        subject=f"Your code for the secure message from {tenant.name}",
        body=(
            f"Your one-time code is {code}\n\nIt works for 10 minutes. If you did not ask for it, "
            "you can ignore this email.\n"
        ),
        kind="portal_code",
        expires_at=entry.expires_at,
        preferred_domain_id=message.sender_domain_id,
    )
    audit.record(
        actor=recipient(portal_message), action="portal.code_send", target=portal_message, tenant=tenant
    )


def _refuse_verification(portal_message: PortalMessage, ip: str | None, reason: str, text: str) -> None:
    _record_hit(portal_message, ip, "fail")
    audit.record(
        actor=recipient(portal_message),
        action="portal.verify",
        target=portal_message,
        tenant=portal_message.tenant_id,
        outcome=AuditEvent.Outcome.DENIED,
        reason=reason,
    )
    raise PortalVerificationFailed(text, code=reason)


def _verified(portal_message: PortalMessage, method: str) -> None:
    audit.record(
        actor=recipient(portal_message),
        action="portal.verify",
        target=portal_message,
        tenant=portal_message.tenant_id,
        details={"method": method},
    )


def portal_code_verify(*, portal_message: PortalMessage, code: str, ip: str | None) -> None:
    """Accept the latest code, or raise PortalVerificationFailed / PortalThrottled (429)."""
    portal_available(portal_message)
    _check_limits(portal_message, ip, "fail", "verify")
    code = code_normalize(code)
    with transaction.atomic():
        entry = (
            PortalCode.objects.select_for_update()
            .filter(portal_message=portal_message, used_at__isnull=True, expires_at__gt=timezone.now())
            .first()
        )
        good = False
        if entry is not None:
            entry.attempts += 1
            good = entry.attempts <= CODE_MAX_ATTEMPTS and code_matches(
                purpose="portal-code", entry_id=entry.pk, code=code, stored_hash=entry.code_hash
            )
            if good or entry.attempts >= CODE_MAX_ATTEMPTS:
                entry.used_at = timezone.now()  # used, or burnt: the next try needs a new code
            entry.save(update_fields=["attempts", "used_at"])
    if entry is None:
        _refuse_verification(
            portal_message, ip, "no_code", "This code has expired or was replaced. Ask for a new code."
        )
    if not good:
        _refuse_verification(portal_message, ip, "wrong_code", "That code is not correct. Please check it.")
    _verified(portal_message, "code")


def portal_passphrase_verify(*, portal_message: PortalMessage, passphrase: str, ip: str | None) -> None:
    portal_available(portal_message)
    _check_limits(portal_message, ip, "fail", "verify")
    if not portal_message.passphrase_hash or not check_password(passphrase, portal_message.passphrase_hash):
        _refuse_verification(
            portal_message,
            ip,
            "wrong_passphrase",
            "That passphrase is not correct. You can ask for a code instead.",
        )
    _verified(portal_message, "passphrase")


def portal_passphrase_set(*, portal_message: PortalMessage, passphrase: str) -> None:
    """Only from a verified session: later visits to this message may use the passphrase."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise ApplicationError(
            f"Choose a passphrase of at least {MIN_PASSPHRASE_CHARS} characters.", code="passphrase_short"
        )
    portal_message.passphrase_hash = make_password(passphrase)
    portal_message.save(update_fields=["passphrase_hash"])
    audit.record(
        actor=recipient(portal_message),
        action="portal.passphrase_set",
        target=portal_message,
        tenant=portal_message.tenant_id,
    )

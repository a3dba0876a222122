"""Unencrypted-email waivers: a patient who was told the risk asks for email without encryption.

From an emailed link the request takes proof of the mailbox (consent.mailbox) and is confirmed by a
mail with a one-click undo; staff and the API record a waiver given on paper or by phone, with its
evidence. When a tenant stops honouring waivers they end for good: turning them back on revives none."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import uuid
from collections.abc import Iterable
from typing import cast

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import links, mailbox
from .evidence import ConsentError, Evidence, recipient_actor
from .models import (
    ConsentText,
    MailboxCheck,
    Purpose,
    Source,
    UnencryptedEmailWaiver,
    WaiverDocument,
    WaiverEvent,
)
from .services import consent_settings_get, consent_text_current


def waiver_active(*, tenant: Tenant, contact: Contact) -> UnencryptedEmailWaiver | None:
    with tenant_context(tenant):
        return (
            UnencryptedEmailWaiver.objects.for_tenant(tenant).filter(contact=contact, status="active").first()
        )


def _validated(*, tenant: Tenant, purposes: Iterable[str], evidence: Evidence) -> list[str]:
    settings = consent_settings_get(tenant=tenant)
    if not settings.allow_unencrypted_waivers:
        raise ConsentError(
            "This organization does not send unencrypted email on request.", code="waivers_off"
        )
    purposes = sorted(set(purposes))
    if not purposes or set(purposes) - set(Purpose.values):
        raise ConsentError(
            "Choose which kinds of email may be sent without encryption.", code="purposes_invalid"
        )
    if evidence.text is None or evidence.text.kind != ConsentText.Kind.UNENCRYPTED_WAIVER:
        raise ConsentError("The risk explanation shown must be recorded.", code="risk_text_required")
    return purposes


@transaction.atomic
def waiver_request(
    *, tenant: Tenant, contact: Contact, purposes: Iterable[str], evidence: Evidence
) -> UnencryptedEmailWaiver:
    """Record a request for unencrypted email, after the risk was explained (evidence.text). Callers
    prove who asks first: a mailbox check from a link, a signed paper or a call staff took.
    A new request replaces an active one (the old one is withdrawn, both stay in the history)."""
    purposes = _validated(tenant=tenant, purposes=purposes, evidence=evidence)
    previous = waiver_active(tenant=tenant, contact=contact)
    if previous is not None:
        waiver_withdraw(tenant=tenant, contact=contact, evidence=evidence)
    with tenant_context(tenant):
        fields = evidence.fields()
        waiver = UnencryptedEmailWaiver.objects.create(
            tenant=tenant,
            contact=contact,
            purposes=purposes,
            risk_text=cast(ConsentText, evidence.text),  # _validated refused a request without one
            requested_at=fields["occurred_at"],
        )
        WaiverEvent.objects.create(
            tenant=tenant,
            waiver=waiver,
            contact=contact,
            kind="requested",
            purposes=purposes,
            text=evidence.text,
            **fields,
        )
        audit.record(
            actor=evidence.actor,
            action="waiver.request",
            target=waiver,
            tenant=tenant,
            details={"purposes": purposes},
        )
    return waiver


@transaction.atomic
def waiver_withdraw(*, tenant: Tenant, contact: Contact, evidence: Evidence) -> UnencryptedEmailWaiver | None:
    waiver = waiver_active(tenant=tenant, contact=contact)
    if waiver is None:
        return None
    with tenant_context(tenant):
        fields = evidence.fields()
        updated = UnencryptedEmailWaiver.objects.filter(pk=waiver.pk, status="active").update(
            status="withdrawn", withdrawn_at=fields["occurred_at"]
        )
        if updated != 1:
            return None
        WaiverEvent.objects.create(
            tenant=tenant,
            waiver=waiver,
            contact=contact,
            kind="withdrawn",
            purposes=waiver.purposes,
            text=evidence.text,
            **fields,
        )
        audit.record(actor=evidence.actor, action="waiver.withdraw", target=waiver, tenant=tenant)
    return waiver


# --- From an emailed link: proof of the mailbox first, a confirmation with an undo after ------------


def waiver_request_start(
    *, tenant: Tenant, contact: Contact, purposes: Iterable[str], evidence: Evidence
) -> MailboxCheck:
    """Nothing changes yet: a code goes to the contact's address, and only that code confirms."""
    purposes = _validated(tenant=tenant, purposes=purposes, evidence=evidence)
    return mailbox.mailbox_check_start(
        tenant=tenant,
        contact=contact,
        action=MailboxCheck.Action.WAIVER_REQUEST,
        purposes=purposes,
        evidence=evidence,
    )


def waiver_request_confirm(
    *, tenant: Tenant, contact: Contact, code: str, evidence: Evidence
) -> UnencryptedEmailWaiver:
    """The code proves the mailbox: record the waiver asked for and tell the mailbox, with an undo."""
    check = mailbox.mailbox_check_confirm(
        tenant=tenant,
        contact=contact,
        action=MailboxCheck.Action.WAIVER_REQUEST,
        code=code,
        evidence=evidence,
    )
    with transaction.atomic():
        waiver = waiver_request(
            tenant=tenant,
            contact=contact,
            purposes=check.purposes,
            evidence=dataclasses.replace(evidence, text=check.text),
        )
        _confirm_to_mailbox(tenant, contact, waiver, actor=recipient_actor(contact))
    return waiver


def _send_confirmation(tenant: Tenant, contact: Contact, address: str, undo_url: str) -> None:
    # No purposes, no health words: only that a setting changed and how to take it back.
    mailbox.mailbox_mail(
        tenant=tenant,
        contact=contact,
        address=address,
        kind="waiver_confirmation",
        subject=f"Your email settings with {tenant.name} changed",
        body=(
            f"You asked {tenant.name} to send some of your email without encryption.\n\n"
            "If this was not you, or you changed your mind, undo it with one click:\n"
            f"{undo_url}\n\n"
            "Until then, email we send you may travel unencrypted.\n"
        ),
    )


@transaction.atomic
def waiver_undo(
    *, tenant: Tenant, contact: Contact, waiver_id: uuid.UUID | None, evidence: Evidence
) -> UnencryptedEmailWaiver | None:
    """Withdraw the waiver this undo link was sent for, if it is still the active one (a link that
    names no waiver undoes nothing)."""
    waiver = waiver_active(tenant=tenant, contact=contact)
    if waiver is None or waiver.pk != waiver_id:
        return None
    return waiver_withdraw(tenant=tenant, contact=contact, evidence=evidence)


# --- Given on paper or by phone, recorded by staff or an integration -----------------------------------

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
DOCUMENT_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/tiff"})
_OUTSIDE_THE_WEB = frozenset({Source.PAPER, Source.VERBAL})


@dataclasses.dataclass(frozen=True)
class ScannedDocument:
    name: str
    content_type: str
    content: bytes


@transaction.atomic
def waiver_record(
    *,
    tenant: Tenant,
    actor: Actor,
    contact: Contact,
    purposes: Iterable[str],
    source: str,
    received_on: datetime.date,
    document: ScannedDocument | None = None,
) -> UnencryptedEmailWaiver:
    """A waiver the patient gave on a signed paper or in a call, recorded with who recorded it, how and
    when it was received, the risk explanation in force, and the scanned paper sealed if there is one."""
    if source not in _OUTSIDE_THE_WEB:
        raise ConsentError("A recorded waiver comes on paper or by phone.", code="source_invalid")
    if received_on > timezone.localdate():
        raise ConsentError("The date received cannot be in the future.", code="received_on_future")
    if document is not None:
        _document_check(document)
    occurred_at = min(
        datetime.datetime.combine(received_on, datetime.time(12), tzinfo=datetime.UTC), timezone.now()
    )
    risk_text = consent_text_current(tenant=tenant, kind=ConsentText.Kind.UNENCRYPTED_WAIVER)
    evidence = Evidence(source=source, actor=actor, occurred_at=occurred_at, text=risk_text)
    waiver = waiver_request(tenant=tenant, contact=contact, purposes=purposes, evidence=evidence)
    with tenant_context(tenant):
        if document is not None:
            WaiverDocument.objects.create(
                tenant=tenant,
                waiver=waiver,
                name=document.name[:200],
                content_type=document.content_type,
                size=len(document.content),
                content=base64.b64encode(document.content).decode(),
                created_by=actor.reference,
            )
        audit.record(
            actor=actor,
            action="waiver.record",
            target=waiver,
            tenant=tenant,
            details={
                "source": source,
                "received_on": received_on.isoformat(),
                "document": document is not None,
            },
        )
    try:
        _confirm_to_mailbox(tenant, contact, waiver, actor=actor)
    except ApplicationError as error:
        if error.code != "sender_domain_unverified":
            raise
        raise ConsentError(
            "This organization has no verified sender domain, so the patient cannot be told of the "
            "waiver by email (with its undo link). Verify a sender domain first, then record it.",
            code="sender_domain_unverified",
        ) from error
    return waiver


def _confirm_to_mailbox(
    tenant: Tenant, contact: Contact, waiver: UnencryptedEmailWaiver, *, actor: Actor
) -> None:
    """A call can be social engineering and paper can be forged: the mailbox hears of it, with the undo."""
    try:
        address = mailbox.contact_address(
            tenant=tenant, contact=contact, purpose="confirmation of a settings change", actor=actor
        )
    except ConsentError:
        return  # no address on file: nothing will be emailed to it either
    undo = links.waiver_undo_url(waiver=waiver)
    # Queued in the waiver's own transaction: a tenant that cannot email its patients (no verified
    # sender domain) cannot record a waiver either, since the mailbox would never hear of it.
    _send_confirmation(tenant, contact, address, undo)


def _document_check(document: ScannedDocument) -> None:
    if document.content_type not in DOCUMENT_TYPES:
        raise ConsentError("Attach the scan as PDF, PNG, JPEG or TIFF.", code="document_type")
    if not document.content or len(document.content) > MAX_DOCUMENT_BYTES:
        raise ConsentError("The scan must be between 1 byte and 10 MB.", code="document_size")

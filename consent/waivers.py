"""Unencrypted-email waivers: a patient who was told the risk asks for email without encryption."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from audit import services as audit
from contacts.models import Contact
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .evidence import ConsentError, Evidence
from .models import (
    ConsentText,
    Purpose,
    UnencryptedEmailWaiver,
    WaiverEvent,
)
from .services import consent_settings_get


def waiver_active(*, tenant: Tenant, contact: Contact) -> UnencryptedEmailWaiver | None:
    with tenant_context(tenant):
        return (
            UnencryptedEmailWaiver.objects.for_tenant(tenant).filter(contact=contact, status="active").first()
        )


@transaction.atomic
def waiver_request(
    *, tenant: Tenant, contact: Contact, purposes: Iterable[str], evidence: Evidence
) -> UnencryptedEmailWaiver:
    """Record a patient's request for unencrypted email, after being shown the risk (evidence.text).
    A new request replaces an active one (the old one is withdrawn, both stay in the history)."""
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
    previous = waiver_active(tenant=tenant, contact=contact)
    if previous is not None:
        waiver_withdraw(tenant=tenant, contact=contact, evidence=evidence)
    with tenant_context(tenant):
        fields = evidence.fields()
        waiver = UnencryptedEmailWaiver.objects.create(
            tenant=tenant,
            contact=contact,
            purposes=purposes,
            risk_text=evidence.text,
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

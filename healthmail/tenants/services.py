"""Tenants and BAAs: every write and the PHI-flow rule `tenant_can`."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from healthmail import audit_trail as audit
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict, PhiFlowRefused

from .context import tenant_context
from .models import BusinessAssociateAgreement, Service, Subcontractor, Tenant


@dataclass(frozen=True)
class Permit:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def _validation_message(error: ValidationError) -> str:
    """One readable sentence from a model ValidationError (field names dropped, messages kept)."""
    if hasattr(error, "message_dict"):
        return " ".join(message for messages in error.message_dict.values() for message in messages)
    return " ".join(error.messages)


def baa_in_force(baa: BusinessAssociateAgreement, on: datetime.date) -> bool:
    if baa.effective_on > on:
        return False
    if baa.expires_on and baa.expires_on <= on:
        return False
    return not (baa.terminated_on and baa.terminated_on <= on)


def active_baa(*, tenant: Tenant, on: datetime.date | None = None) -> BusinessAssociateAgreement | None:
    """The BAA in force on a date: effective, not expired, not terminated; newest first."""
    on = on or timezone.localdate()
    with tenant_context(tenant):
        candidates = BusinessAssociateAgreement.objects.for_tenant(tenant).filter(effective_on__lte=on)
        for baa in candidates:
            if baa_in_force(baa, on):
                return baa
    return None


def _permit(tenant: Tenant, baa: BusinessAssociateAgreement | None, service: str) -> Permit:
    label = Service(service).label
    if not tenant.is_active:
        return Permit(False, f"The organization {tenant.name} is suspended; no PHI may be processed.")
    if baa is None:
        return Permit(
            False,
            f"No Business Associate Agreement is in force for {tenant.name}; "
            f"{label.lower()} with PHI is refused. A platform administrator must record a signed BAA.",
        )
    if service not in baa.services:
        return Permit(
            False,
            f"The Business Associate Agreement in force does not cover {label.lower()}; "
            "PHI may not flow through it.",
        )
    return Permit(True, f"Covered by the BAA with {baa.counterparty} effective {baa.effective_on}.")


def tenant_can(tenant: Tenant, service: str, *, on: datetime.date | None = None) -> Permit:
    """May PHI flow for this tenant through this service today? Always with a reason."""
    Service(service)  # an unknown service is a programming error, raised before any query
    baa = active_baa(tenant=tenant, on=on) if tenant.is_active else None
    return _permit(tenant, baa, service)


def tenant_service_permits(tenant: Tenant, *, on: datetime.date | None = None) -> dict[str, Permit]:
    """`tenant_can` for every service at once (one BAA lookup), keyed by service value."""
    baa = active_baa(tenant=tenant, on=on) if tenant.is_active else None
    return {service: _permit(tenant, baa, service) for service in Service.values}


def require_phi_flow(tenant: Tenant, service: str) -> None:
    """Raise PhiFlowRefused with the reason unless PHI may flow (used by every PHI-sending path)."""
    permit = tenant_can(tenant, service)
    if not permit:
        raise PhiFlowRefused(permit.reason, code="baa_required")


def require_phi_intake(tenant: Tenant) -> None:
    """Raise PhiFlowRefused unless patient data may be received and stored for this tenant: the
    organization is active and a BAA is in force. Any covered service will do: the contact record
    (identity, demographics, clinical codes) is what every covered service works from."""
    if not tenant.is_active:
        raise PhiFlowRefused(
            f"The organization {tenant.name} is suspended; no patient data (PHI) may be received.",
            code="tenant_suspended",
        )
    if active_baa(tenant=tenant) is None:
        raise PhiFlowRefused(
            f"No Business Associate Agreement is in force for {tenant.name}, so patient data "
            "(contacts with their identifying, demographic and clinical fields) cannot be received. "
            "A platform administrator must record a signed BAA first.",
            code="baa_required",
        )


@transaction.atomic
def tenant_create(
    *, actor: Actor, name: str, slug: str, postal_address: str, timezone_name: str = "America/New_York"
) -> Tenant:
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(f"The short name “{slug}” is taken.", code="slug_taken")
    tenant = Tenant(
        name=name.strip(), slug=slug, postal_address=postal_address.strip(), timezone=timezone_name
    )
    try:
        tenant.full_clean()
    except ValidationError as error:
        raise ApplicationError(_validation_message(error), code="invalid") from error
    try:
        # A savepoint, so a concurrent create of the same slug fails cleanly instead of poisoning
        # the caller's transaction.
        with transaction.atomic():
            tenant.save()
    except IntegrityError as error:
        raise Conflict(f"The short name “{slug}” is taken.", code="slug_taken") from error
    audit.record(actor=actor, action="tenant.create", target=tenant, tenant=tenant, details={"slug": slug})
    return tenant


@transaction.atomic
def tenant_set_status(*, actor: Actor, tenant: Tenant, status: str, reason: str) -> Tenant:
    if status not in Tenant.Status.values:
        raise ApplicationError("Unknown status.", code="status")
    if not reason.strip():
        raise ApplicationError("A reason is required.", code="reason_required")
    if tenant.status == status:
        raise ApplicationError(f"The organization is already {Tenant.Status(status).label.lower()}.")
    # Compare-and-set: two admins acting at once cannot both flip the status.
    updated = Tenant.objects.filter(pk=tenant.pk, status=tenant.status).update(
        status=status, status_changed_at=timezone.now(), status_reason=reason.strip()[:500]
    )
    if updated != 1:
        raise Conflict("The organization changed meanwhile; reload and try again.", code="conflict")
    tenant.refresh_from_db()
    action = "tenant.suspend" if status == Tenant.Status.SUSPENDED else "tenant.reactivate"
    audit.record(actor=actor, action=action, target=tenant, tenant=tenant, reason=reason)
    return tenant


@transaction.atomic
def tenant_update_settings(
    *, actor: Actor, tenant: Tenant, postal_address: str, timezone_name: str, idle_timeout_minutes: int
) -> Tenant:
    changed = []
    for field, value in (
        ("postal_address", postal_address.strip()),
        ("timezone", timezone_name),
        ("idle_timeout_minutes", idle_timeout_minutes),
    ):
        if getattr(tenant, field) != value:
            setattr(tenant, field, value)
            changed.append(field)
    if not changed:
        return tenant
    try:
        tenant.full_clean()
    except ValidationError as error:
        tenant.refresh_from_db()
        raise ApplicationError(_validation_message(error), code="invalid") from error
    tenant.save(update_fields=changed)
    audit.record(
        actor=actor,
        action="tenant.settings_change",
        target=tenant,
        tenant=tenant,
        details={"fields": changed},
    )
    return tenant


@dataclass(frozen=True)
class SubcontractorEntry:
    name: str
    service: str
    has_baa: bool = True


def baa_check_dates(
    *, signed_on: datetime.date, effective_on: datetime.date, expires_on: datetime.date | None
) -> None:
    """The date rules of a BAA, shared by the service, the form and the command."""
    if effective_on < signed_on:
        raise ApplicationError(
            "The BAA cannot take effect before it is signed.", code="effective_before_signed"
        )
    if expires_on and expires_on <= effective_on:
        raise ApplicationError(
            "The expiry date must come after the effective date.", code="expiry_not_after_effective"
        )


@transaction.atomic
def baa_record(
    *,
    actor: Actor,
    tenant: Tenant,
    counterparty: str,
    signed_on: datetime.date,
    effective_on: datetime.date,
    expires_on: datetime.date | None,
    signatory_name: str,
    signatory_title: str = "",
    document_sha256: str,
    services: Iterable[str],
    breach_notification_days: int = 60,
    subcontractors: Iterable[SubcontractorEntry] = (),
) -> BusinessAssociateAgreement:
    """Record a signed BAA (a renewal is simply a newer one). Only the document's hash is kept."""
    services = sorted(set(services))
    unknown = set(services) - set(Service.values)
    if unknown:
        raise ApplicationError(f"Unknown service: {', '.join(sorted(unknown))}.", code="services")
    if not services:
        raise ApplicationError("Choose at least one service the BAA covers.", code="services")
    baa_check_dates(signed_on=signed_on, effective_on=effective_on, expires_on=expires_on)
    subcontractors = list(subcontractors)
    with tenant_context(tenant):
        baa = BusinessAssociateAgreement(
            tenant=tenant,
            counterparty=counterparty.strip(),
            signed_on=signed_on,
            effective_on=effective_on,
            expires_on=expires_on,
            signatory_name=signatory_name.strip(),
            signatory_title=signatory_title.strip(),
            document_sha256=document_sha256.lower(),
            services=services,
            breach_notification_days=breach_notification_days,
            recorded_by=actor.user,
        )
        try:
            baa.full_clean(exclude=["tenant", "recorded_by"])
        except ValidationError as error:
            raise ApplicationError(_validation_message(error), code="invalid") from error
        baa.save()
        for entry in subcontractors:
            Subcontractor.objects.create(
                tenant=tenant, baa=baa, name=entry.name, service=entry.service, has_baa=entry.has_baa
            )
        audit.record(
            actor=actor,
            action="baa.record",
            target=baa,
            tenant=tenant,
            details={
                "services": baa.services,
                "effective_on": str(effective_on),
                "expires_on": str(expires_on) if expires_on else None,
                "document_sha256": baa.document_sha256,
                "subcontractors": len(subcontractors),
            },
        )
    return baa


@transaction.atomic
def baa_terminate(
    *, actor: Actor, tenant: Tenant, baa: BusinessAssociateAgreement, on: datetime.date, reason: str
) -> BusinessAssociateAgreement:
    if not reason.strip():
        raise ApplicationError("A reason is required.", code="reason_required")
    if baa.tenant_id != tenant.pk:
        raise ApplicationError("This agreement belongs to another organization.", code="tenant_mismatch")
    if on < baa.signed_on:
        raise ApplicationError("An agreement cannot end before it was signed.", code="dates")
    with tenant_context(tenant):
        # Compare-and-set, so a BAA is terminated once and its first termination date stands.
        updated = BusinessAssociateAgreement.objects.filter(
            pk=baa.pk, tenant=tenant, terminated_on__isnull=True
        ).update(terminated_on=on)
        if updated != 1:
            raise Conflict("This agreement is already terminated.", code="already_terminated")
        baa.terminated_on = on
        audit.record(
            actor=actor,
            action="baa.terminate",
            target=baa,
            tenant=tenant,
            reason=reason.strip(),
            details={"terminated_on": str(on)},
        )
    return baa

"""Tenants and BAAs: every write and the PHI-flow rule `tenant_can`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from audit.actors import Actor
from healthmail.errors import ApplicationError, PhiFlowRefused

from .context import tenant_context
from .models import BusinessAssociateAgreement, Service, Subcontractor, Tenant


@dataclass(frozen=True)
class Permit:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def active_baa(*, tenant: Tenant, on: datetime.date | None = None) -> BusinessAssociateAgreement | None:
    """The BAA in force on a date: effective, not expired, not terminated; newest first."""
    on = on or timezone.localdate()
    with tenant_context(tenant):
        candidates = BusinessAssociateAgreement.objects.for_tenant(tenant).filter(effective_on__lte=on)
        for baa in candidates:
            if baa.expires_on and baa.expires_on <= on:
                continue
            if baa.terminated_on and baa.terminated_on <= on:
                continue
            return baa
    return None


def tenant_can(tenant: Tenant, service: str, *, on: datetime.date | None = None) -> Permit:
    """May PHI flow for this tenant through this service today? Always with a reason."""
    label = Service(service).label
    if not tenant.is_active:
        return Permit(False, f"The organization {tenant.name} is suspended; no PHI may be processed.")
    baa = active_baa(tenant=tenant, on=on)
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


@transaction.atomic
def tenant_create(
    *, actor: Actor, name: str, slug: str, postal_address: str, timezone_name: str = "America/New_York"
) -> Tenant:
    if Tenant.objects.filter(slug=slug).exists():
        raise ApplicationError(f"The short name “{slug}” is taken.", code="slug_taken")
    tenant = Tenant(name=name, slug=slug, postal_address=postal_address, timezone=timezone_name)
    tenant.full_clean()
    tenant.save()
    audit.record(actor=actor, action="tenant.create", target=tenant, tenant=tenant, details={"slug": slug})
    return tenant


@transaction.atomic
def tenant_set_status(*, actor: Actor, tenant: Tenant, status: str, reason: str) -> Tenant:
    if not reason.strip():
        raise ApplicationError("A reason is required.", code="reason_required")
    if tenant.status == status:
        raise ApplicationError(f"The organization is already {Tenant.Status(status).label.lower()}.")
    updated = Tenant.objects.filter(pk=tenant.pk, status=tenant.status).update(
        status=status, status_changed_at=timezone.now(), status_reason=reason
    )
    if updated != 1:
        raise ApplicationError("The organization changed meanwhile; reload and try again.", code="conflict")
    tenant.refresh_from_db()
    action = "tenant.suspend" if status == Tenant.Status.SUSPENDED else "tenant.reactivate"
    audit.record(actor=actor, action=action, target=tenant, tenant=tenant, reason=reason)
    return tenant


@transaction.atomic
def tenant_update_settings(
    *, actor: Actor, tenant: Tenant, postal_address: str, timezone_name: str, idle_timeout_minutes: int
) -> Tenant:
    changed = {}
    for field, value in (
        ("postal_address", postal_address),
        ("timezone", timezone_name),
        ("idle_timeout_minutes", idle_timeout_minutes),
    ):
        if getattr(tenant, field) != value:
            setattr(tenant, field, value)
            changed[field] = True
    tenant.full_clean()
    tenant.save()
    audit.record(actor=actor, action="tenant.settings_change", target=tenant, tenant=tenant,
                 details={"fields": sorted(changed)})
    return tenant


@dataclass(frozen=True)
class SubcontractorEntry:
    name: str
    service: str
    has_baa: bool = True


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
    services: list[str],
    breach_notification_days: int = 60,
    subcontractors: list[SubcontractorEntry] = (),
) -> BusinessAssociateAgreement:
    """Record a signed BAA (a renewal is simply a newer one)."""
    unknown = set(services) - set(Service.values)
    if unknown or not services:
        raise ApplicationError("Choose at least one service the BAA covers.", code="services")
    if effective_on < signed_on:
        raise ApplicationError("The BAA cannot take effect before it is signed.", code="dates")
    if expires_on and expires_on <= effective_on:
        raise ApplicationError("The expiry date must come after the effective date.", code="dates")
    with tenant_context(tenant):
        baa = BusinessAssociateAgreement(
            tenant=tenant,
            counterparty=counterparty,
            signed_on=signed_on,
            effective_on=effective_on,
            expires_on=expires_on,
            signatory_name=signatory_name,
            signatory_title=signatory_title,
            document_sha256=document_sha256.lower(),
            services=sorted(set(services)),
            breach_notification_days=breach_notification_days,
            recorded_by=actor.user,
        )
        baa.full_clean(exclude=["tenant", "recorded_by"])
        baa.save()
        for entry in subcontractors:
            Subcontractor.objects.create(
                tenant=tenant, baa=baa, name=entry.name, service=entry.service, has_baa=entry.has_baa
            )
        audit.record(
            actor=actor, action="baa.record", target=baa, tenant=tenant,
            details={"services": baa.services, "effective_on": str(effective_on),
                     "expires_on": str(expires_on) if expires_on else None},
        )
    return baa


@transaction.atomic
def baa_terminate(*, actor: Actor, tenant: Tenant, baa: BusinessAssociateAgreement,
                  on: datetime.date, reason: str) -> BusinessAssociateAgreement:
    if not reason.strip():
        raise ApplicationError("A reason is required.", code="reason_required")
    with tenant_context(tenant):
        baa.terminated_on = on
        baa.save(update_fields=["terminated_on"])
        audit.record(actor=actor, action="baa.terminate", target=baa, tenant=tenant, reason=reason)
    return baa


def require_phi_flow(tenant: Tenant, service: str) -> None:
    """Raise PhiFlowRefused with the reason unless PHI may flow (used by every PHI-sending path)."""
    permit = tenant_can(tenant, service)
    if not permit:
        raise PhiFlowRefused(permit.reason, code="baa_required")

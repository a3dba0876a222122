"""Reads for the platform-admin pages: tenants with their BAA status and counts, never PHI.

BAA and membership rows sit under row-level security, so each tenant's rows are read inside that
tenant's context, one tenant at a time.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from healthmail.accounts.models import Membership
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import BusinessAssociateAgreement, Service, Tenant
from healthmail.tenants.services import Permit, baa_in_force, tenant_service_permits


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    label: str
    permit: Permit


@dataclass(frozen=True)
class TenantSummary:
    tenant: Tenant
    services: list[ServiceStatus]
    member_count: int

    @property
    def covered_count(self) -> int:
        return sum(1 for status in self.services if status.permit.allowed)


@dataclass(frozen=True)
class BaaRow:
    baa: BusinessAssociateAgreement
    state: str  # in force | not yet effective | expired | terminated | superseded
    subcontractors: list[Any]

    @property
    def service_labels(self) -> str:
        return service_labels(self.baa)


def service_labels(baa: BusinessAssociateAgreement) -> str:
    return ", ".join(Service(value).label for value in baa.services)


def tenant_service_statuses(tenant: Tenant) -> list[ServiceStatus]:
    permits = tenant_service_permits(tenant)
    return [ServiceStatus(value, label, permits[value]) for value, label in Service.choices]


def _member_count(tenant: Tenant) -> int:
    with tenant_context(tenant):
        return Membership.objects.for_tenant(tenant).filter(is_active=True).count()


def tenant_summaries() -> list[TenantSummary]:
    """Every tenant with its per-service BAA status. One context per tenant: fine for the hundreds
    of tenants a deployment serves; a platform report table would replace it beyond that."""
    return [
        TenantSummary(tenant, tenant_service_statuses(tenant), _member_count(tenant))
        for tenant in Tenant.objects.order_by("name")
    ]


def tenant_summary(tenant: Tenant) -> TenantSummary:
    return TenantSummary(tenant, tenant_service_statuses(tenant), _member_count(tenant))


def _baa_state(baa: BusinessAssociateAgreement, governing_id: object, today: datetime.date) -> str:
    if baa.terminated_on and baa.terminated_on <= today:
        return "terminated"
    if baa.effective_on > today:
        return "not yet effective"
    if baa.expires_on and baa.expires_on <= today:
        return "expired"
    return "in force" if baa.pk == governing_id else "superseded"


def baa_history(tenant: Tenant) -> list[BaaRow]:
    """All of a tenant's BAAs, newest first, each with its state today and its subcontractors."""
    today = timezone.localdate()
    with tenant_context(tenant):
        baas = list(BusinessAssociateAgreement.objects.for_tenant(tenant).prefetch_related("subcontractors"))
        governing = next((baa.pk for baa in baas if baa_in_force(baa, today)), None)
        return [
            BaaRow(baa, _baa_state(baa, governing, today), list(baa.subcontractors.all())) for baa in baas
        ]


def baa_get(tenant: Tenant, baa_id: uuid.UUID | str) -> BusinessAssociateAgreement | None:
    with tenant_context(tenant):
        return BusinessAssociateAgreement.objects.for_tenant(tenant).filter(pk=baa_id).first()


def baa_subcontractor_lines(tenant: Tenant, baa: BusinessAssociateAgreement) -> str:
    """A BAA's subcontractors in the form's `name | service` lines (to prefill a renewal)."""
    with tenant_context(tenant):
        return "\n".join(f"{sub.name} | {sub.service}" for sub in baa.subcontractors.all())

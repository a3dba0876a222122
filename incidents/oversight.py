"""Oversight chores: reminders before a tenant's BAA expires.

A BAA that expires stops every PHI flow of the tenant (healthmail.tenants.services.require_phi_flow),
so its compliance officers (its admins when it has none) are told 60, 30, 14, 7 and 1 days before,
once per threshold, unless a renewal already covers the day after. The reminder is an audit event
flagged `alert`, which audit's alert rules raise in-app and mail."""

from __future__ import annotations

import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import services as audit
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import BusinessAssociateAgreement, Tenant
from healthmail.tenants.services import active_baa, baa_in_force

from .models import BaaReminder

BAA_REMINDER_DAYS = (60, 30, 14, 7, 1)


def reminder_threshold(expires_on: datetime.date, today: datetime.date) -> int | None:
    left = (expires_on - today).days
    reached = [days for days in BAA_REMINDER_DAYS if left <= days]
    return min(reached) if reached else None


def _renewed(tenant: Tenant, baa: BusinessAssociateAgreement, expires_on: datetime.date) -> bool:
    """Another agreement is in force on the day this one expires."""
    others = BusinessAssociateAgreement.objects.filter(tenant=tenant).exclude(pk=baa.pk)
    return any(baa_in_force(other, expires_on) for other in others)


def baa_reminders_tenant(tenant: Tenant, today: datetime.date | None = None) -> int:
    today = today or timezone.localdate()
    baa = active_baa(tenant=tenant, on=today)
    if baa is None or baa.expires_on is None:
        return 0
    threshold = reminder_threshold(baa.expires_on, today)
    with tenant_context(tenant):
        if threshold is None or _renewed(tenant, baa, baa.expires_on):
            return 0
        try:
            with transaction.atomic():
                BaaReminder.objects.create(
                    tenant=tenant, baa=baa, threshold_days=threshold, expires_on=baa.expires_on
                )
                left = (baa.expires_on - today).days
                audit.record(
                    actor=Actor.system("incidents.oversight"),
                    action="baa.expiry_reminder",
                    target=baa,
                    tenant=tenant,
                    details={
                        "expires_on": baa.expires_on.isoformat(),
                        "threshold_days": threshold,
                        "alert": "critical" if threshold <= 7 else "warning",
                        "summary": f"The BAA with {baa.counterparty} expires on {baa.expires_on.isoformat()} "
                        f"(in {left} days): PHI stops flowing then unless it is renewed",
                    },
                )
        except IntegrityError:
            return 0  # this threshold was raised already
    return 1


def baa_reminders(today: datetime.date | None = None) -> int:
    return sum(
        baa_reminders_tenant(tenant, today) for tenant in Tenant.objects.filter(status=Tenant.Status.ACTIVE)
    )
